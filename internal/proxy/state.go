package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// stateVersion is written into the state file; older versions are still read.
const stateVersion = 1

type persisted struct {
	Version  int                `json:"version"`
	Services []persistedService `json:"services"`
}

type persistedService struct {
	ServiceSpec
	Standby       []string      `json:"standby,omitempty"`
	Canary        []string      `json:"canary,omitempty"`
	CanaryPercent int           `json:"canary_percent,omitempty"`
	CanarySticky  bool          `json:"canary_sticky,omitempty"`
	Paused        PauseMode     `json:"paused,omitempty"`
	PauseMessage  string        `json:"pause_message,omitempty"`
	PauseTimeout  time.Duration `json:"pause_timeout,omitempty"`
}

// persist writes the committed routes atomically (temp file, rename);
// callers hold p.mu. A crash leaves either the old or the new file.
func (p *Proxy) persist() error {
	if p.cfg.StateDir == "" {
		return nil
	}
	st := persisted{Version: stateVersion}
	for _, s := range p.services {
		ps := persistedService{ServiceSpec: s.spec}
		ps.Targets = s.active.Load().addrs
		if sb := s.standby.Load(); sb != nil {
			ps.Standby = sb.addrs
		}
		if s.canary.Load() != nil {
			ps.Canary, ps.CanaryPercent, ps.CanarySticky = s.canaryTargets, int(s.canaryPercent.Load()), s.canarySticky.Load()
		}
		if pz := s.paused.Load(); pz != nil {
			ps.Paused, ps.PauseMessage, ps.PauseTimeout = pz.mode, pz.message, pz.timeout
		}
		st.Services = append(st.Services, ps)
	}
	sort.Slice(st.Services, func(i, j int) bool { return st.Services[i].Name < st.Services[j].Name })
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(p.cfg.StateDir, 0o700); err != nil {
		return err
	}
	path := filepath.Join(p.cfg.StateDir, stateFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// restore loads the persisted routes. Targets are restored without a
// health gate (they were committed); active checks take over from there.
func (p *Proxy) restore() error {
	if p.cfg.StateDir == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(p.cfg.StateDir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read proxy state: %w", err)
	}
	var st persisted
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("proxy state %s: %w", filepath.Join(p.cfg.StateDir, stateFile), err)
	}
	if st.Version > stateVersion {
		return fmt.Errorf("proxy state version %d is newer than this binary understands (%d)", st.Version, stateVersion)
	}
	for _, ps := range st.Services {
		spec := ps.ServiceSpec
		if err := spec.validate(); err != nil {
			return fmt.Errorf("proxy state, service %q: %w", spec.Name, err)
		}
		spec.Health.defaults()
		if spec.DrainTimeout <= 0 {
			spec.DrainTimeout = DefaultDrainTimeout
		}
		svc := &service{name: spec.Name, spec: spec}
		svc.active.Store(newTargetSet(spec.Targets, p))
		if len(ps.Standby) > 0 {
			svc.standby.Store(newTargetSet(ps.Standby, p))
		}
		if ps.CanaryPercent > 0 && len(ps.Canary) > 0 {
			svc.canary.Store(newTargetSet(ps.Canary, p))
			svc.canaryPercent.Store(int32(ps.CanaryPercent))
			svc.canarySticky.Store(ps.CanarySticky)
			svc.canaryTargets = ps.Canary
		}
		if ps.Paused != "" {
			svc.paused.Store(&pauseState{mode: ps.Paused, message: ps.PauseMessage, timeout: ps.PauseTimeout, resumed: make(chan struct{})})
		}
		p.services[spec.Name] = svc
	}
	p.rebuild()
	p.log.Info("restored routes", "services", len(st.Services))
	return nil
}
