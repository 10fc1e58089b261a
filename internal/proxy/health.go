package proxy

import (
	"context"
	"sync"
	"time"
)

// healthTick is how often the loop looks for checks that are due.
const healthTick = 100 * time.Millisecond

// healthLoop runs the active checks of every target in the active, canary
// and standby sets at their service's interval.
func (p *Proxy) healthLoop() {
	defer p.healthWG.Done()
	t := time.NewTicker(healthTick)
	defer t.Stop()
	last := map[*target]time.Time{}
	for {
		select {
		case <-p.stopHealth:
			return
		case <-t.C:
		}
		p.mu.Lock()
		type job struct {
			t  *target
			hc HealthCheck
		}
		var jobs []job
		now := time.Now()
		seen := map[*target]bool{}
		for _, s := range p.services {
			for _, set := range []*targetSet{s.active.Load(), s.canary.Load(), s.standby.Load()} {
				if set == nil {
					continue
				}
				for _, tg := range set.targets {
					seen[tg] = true
					if now.Sub(last[tg]) >= s.spec.Health.Interval {
						last[tg] = now
						jobs = append(jobs, job{tg, s.spec.Health})
					}
				}
			}
		}
		p.mu.Unlock()
		for tg := range last {
			if !seen[tg] {
				delete(last, tg)
			}
		}
		var wg sync.WaitGroup
		for _, j := range jobs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				j.t.check(j.hc)
			}()
		}
		wg.Wait()
	}
}

// check runs one active check and applies the thresholds.
func (t *target) check(hc HealthCheck) {
	err := t.probe(context.Background(), hc)
	if err == nil {
		t.failStreak.Store(0)
		if t.okStreak.Add(1) >= int32(hc.HealthyThreshold) {
			t.healthy.Store(true)
		}
		return
	}
	t.okStreak.Store(0)
	if t.failStreak.Add(1) >= int32(hc.UnhealthyThreshold) {
		t.healthy.Store(false)
	}
}
