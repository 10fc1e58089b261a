package server

import (
	"github.com/cutover/cutover/internal/api"
	"github.com/cutover/cutover/internal/notify"
)

var _ api.Notifications = (*notify.Notifier)(nil)

// startNotifier runs the notifier while this server is active: only the
// lease holder sends notifications, woken by the deploy machine's events.
func (s *Server) startNotifier() {
	if s.notify == nil || s.stopNotify != nil {
		return
	}
	wake, unsubscribe := s.Deploy.Subscribe()
	n := notify.New(notify.Config{Store: s.store, AllowPrivate: s.cfg.AllowPrivateNotify, SMTP: s.cfg.SMTP, RetryFor: s.cfg.NotifyRetryFor, Logger: s.log.With("part", "notify"), Wake: wake})
	stop := n.Start()
	s.stopNotify = func() { stop(); unsubscribe() }
}

// stopNotifier stops the notifier and waits for it; a delivery in flight
// is abandoned and, unless acknowledged, sent again by the next active
// server.
func (s *Server) stopNotifier() {
	if s.stopNotify != nil {
		s.stopNotify()
		s.stopNotify = nil
	}
}
