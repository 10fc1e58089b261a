package testutil

import (
	"net"
	"strconv"
	"testing"
)

func TestListenAddr_OutsideEphemeralRangeAndFree(t *testing.T) {
	lo := ephemeralLowest()
	seen := map[string]bool{}
	for range 20 {
		addr := ListenAddr(t)
		if seen[addr] {
			t.Fatalf("%s handed out twice", addr)
		}
		seen[addr] = true
		_, port, _ := net.SplitHostPort(addr)
		if p, _ := strconv.Atoi(port); lo-lowestPort >= 1000 && (p < lowestPort || p >= lo) {
			t.Errorf("port %d is not in [%d, %d)", p, lowestPort, lo)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listen on %s: %v", addr, err)
		}
		l.Close()
	}
}
