// Package measure holds what the benchmark programs share: percentiles of
// measured durations and free loopback addresses.
package measure

import (
	"net"
	"slices"
	"time"
)

// Percentile is the p-th percentile of ds (0: the minimum, 100: the
// maximum; nearest rank), 0 for none.
func Percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i]
}

// FreeAddr returns a loopback address that was free a moment ago.
func FreeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}
