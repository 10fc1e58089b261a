package deploy

// QueueIdle reports whether an environment's queue has nothing running or
// waiting (for tests in deploy_test that must know a tick's work is done).
func (s *Service) QueueIdle(app, env string) bool {
	q, err := s.queue(app, env)
	if err != nil {
		return true
	}
	return q.busy() == ""
}
