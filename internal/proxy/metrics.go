package proxy

import (
	"github.com/prometheus/client_golang/prometheus"
)

// collector exposes the proxy's counters as Prometheus metrics. It reads
// the same atomics the hot path updates, at scrape time.
type collector struct{ p *Proxy }

var (
	descRequests   = prometheus.NewDesc("cutover_proxy_requests_total", "Requests proxied, by service and target.", []string{"service", "target"}, nil)
	descErrors     = prometheus.NewDesc("cutover_proxy_responses_5xx_total", "Responses with a 5xx status, by service and target.", []string{"service", "target"}, nil)
	descConnErrors = prometheus.NewDesc("cutover_proxy_connection_errors_total", "Failures to reach a target, by service and target.", []string{"service", "target"}, nil)
	descLatency    = prometheus.NewDesc("cutover_proxy_request_duration_seconds", "Request latency through the proxy, by service and target.", []string{"service", "target"}, nil)
	descHealthy    = prometheus.NewDesc("cutover_proxy_target_healthy", "1 when the target passes its active health check.", []string{"service", "target"}, nil)
	descInFlight   = prometheus.NewDesc("cutover_proxy_in_flight", "Requests in flight on the active set.", []string{"service"}, nil)
	descDraining   = prometheus.NewDesc("cutover_proxy_draining_sets", "Target sets still draining after a switch.", []string{"service"}, nil)
)

// Collector returns a prometheus.Collector for the proxy's metrics.
func (p *Proxy) Collector() prometheus.Collector { return collector{p} }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descErrors, descConnErrors, descLatency, descHealthy, descInFlight, descDraining} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.p.mu.Lock()
	svcs := make([]*service, 0, len(c.p.services))
	for _, s := range c.p.services {
		svcs = append(svcs, s)
	}
	c.p.mu.Unlock()
	for _, s := range svcs {
		set := s.active.Load()
		ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(set.inflight.Load()), s.name)
		s.drainMu.Lock()
		ch <- prometheus.MustNewConstMetric(descDraining, prometheus.GaugeValue, float64(len(s.drains)), s.name)
		s.drainMu.Unlock()
		for _, t := range set.targets {
			ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(t.stats.requests.Load()), s.name, t.addr)
			ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(t.stats.errors5xx.Load()), s.name, t.addr)
			ch <- prometheus.MustNewConstMetric(descConnErrors, prometheus.CounterValue, float64(t.stats.connErrors.Load()), s.name, t.addr)
			healthy := 0.0
			if t.healthy.Load() {
				healthy = 1
			}
			ch <- prometheus.MustNewConstMetric(descHealthy, prometheus.GaugeValue, healthy, s.name, t.addr)
			buckets := map[float64]uint64{}
			var cum uint64
			for i, ub := range latencyBuckets {
				cum += t.stats.latency[i].Load()
				buckets[ub] = cum
			}
			count := cum + t.stats.latency[len(latencyBuckets)].Load()
			sum := float64(t.stats.latencySum.Load()) / 1e6
			ch <- prometheus.MustNewConstHistogram(descLatency, count, sum, buckets, s.name, t.addr)
		}
	}
}
