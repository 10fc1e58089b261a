package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cutover/cutover/internal/core"
)

// The server lease: one server at a time recovers, ticks and runs the
// environment queues. The others answer queries and refuse changes,
// naming the active server, and take over when its lease expires.
const (
	LeaseName       = "active"
	DefaultLeaseTTL = 15 * time.Second
)

// startLease takes the lease if it can (a lone server is active at once)
// and starts the loop that renews it, or waits to take it over.
func (s *Server) startLease(ctx context.Context) error {
	if s.cfg.LeaseTTL <= 0 {
		s.cfg.LeaseTTL = DefaultLeaseTTL
	}
	if err := s.tryActivate(ctx); err != nil {
		return err
	}
	lctx, cancel := context.WithCancel(context.Background())
	s.stopLease = cancel
	s.leaseDone = make(chan struct{})
	go s.leaseLoop(lctx)
	return nil
}

// tryActivate takes the lease and starts the deploy machine. It returns an
// error only when starting fails for another reason than a held lease.
func (s *Server) tryActivate(ctx context.Context) error {
	l, err := s.store.AcquireLease(ctx, LeaseName, s.name, s.cfg.LeaseTTL)
	var held *core.LeaseHeldError
	if errors.As(err, &held) {
		s.Deploy.SetStandby(held.Error() + "; send changes there")
		return nil
	}
	if err != nil {
		return fmt.Errorf("take the server lease: %w", err)
	}
	s.store.SetFence(&l)
	s.lease = l
	if err := s.Deploy.Start(ctx); err != nil {
		s.deactivate("start failed: " + err.Error())
		return err
	}
	s.startNotifier()
	s.log.Info("this server is active", "server", s.name, "generation", l.Generation)
	s.Deploy.Publish(ctx, core.Event{Type: core.EventServerActive, Actor: s.name,
		Message: fmt.Sprintf("server %s is active (lease generation %d)", s.name, l.Generation)})
	return nil
}

// deactivate stops the deploy machine and fences the store so nothing this
// server still has in flight can write.
func (s *Server) deactivate(why string) {
	s.store.SetFence(&core.Lease{Name: LeaseName, Owner: s.name, Generation: 0})
	s.stopNotifier()
	s.Deploy.Close()
	s.Deploy.SetStandby(why)
	s.lease = core.Lease{}
}

func (s *Server) leaseLoop(ctx context.Context) {
	defer close(s.leaseDone)
	every := s.cfg.LeaseTTL / 3
	t := time.NewTicker(every)
	defer t.Stop()
	lastRenewed := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.lease.Generation == 0 {
			if err := s.tryActivate(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("take over", "err", err)
			}
			lastRenewed = time.Now()
			continue
		}
		l, err := s.store.RenewLease(ctx, s.lease, s.cfg.LeaseTTL)
		switch {
		case err == nil:
			s.lease, lastRenewed = l, time.Now()
		case errors.Is(err, core.ErrFenced):
			s.log.Warn("lease lost: stopping the deploy machine", "server", s.name, "err", err)
			s.deactivate("this server lost the lease: " + err.Error())
		case ctx.Err() != nil:
			return
		default:
			// The database is unreachable: past the TTL another server may
			// have taken over, so stop acting until the lease is ours again.
			s.log.Error("renew lease", "err", err)
			if time.Since(lastRenewed) > s.cfg.LeaseTTL {
				s.deactivate("the lease could not be renewed: " + err.Error())
			}
		}
	}
}

func (s *Server) stopLeaseLoop() {
	if s.stopLease != nil {
		s.stopLease()
		<-s.leaseDone
		s.stopLease = nil
	}
}

// releaseLease gives the lease up on a clean shutdown, so a standby takes
// over at once.
func (s *Server) releaseLease() {
	if s.store == nil || s.lease.Generation == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.store.ReleaseLease(ctx, s.lease); err != nil {
		s.log.Warn("release lease", "err", err)
	}
	s.lease = core.Lease{}
}
