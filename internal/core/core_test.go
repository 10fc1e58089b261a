package core

import (
	"errors"
	"testing"
)

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]string{"2.4.5": "2.4.5", "v0.1.0": "0.1.0", "3.0.0-rc.1": "3.0.0-rc.1"} {
		v, err := ParseVersion(in)
		if err != nil || v.String() != want {
			t.Errorf("%q = %v, %v", in, v, err)
		}
	}
	for _, bad := range []string{"", "1.2", "01.2.3", "1.2.3.4", "--upload-pack=x", "$(id)", "1.2.3\n", "1.2.3;rm", "v1.2.3-", "1.2.3 ", "3.0.0-rc.01"} {
		if _, err := ParseVersion(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q accepted", bad)
		}
	}
	a, _ := ParseVersion("2.4.5")
	b, _ := ParseVersion("2.10.0")
	pre, _ := ParseVersion("3.0.0-rc.1")
	rel, _ := ParseVersion("3.0.0")
	if !a.Less(b) || b.Less(a) || !pre.Less(rel) || rel.Less(pre) || a.Less(a) {
		t.Error("ordering wrong")
	}
	for part, want := range map[string]string{"major": "3.0.0", "minor": "2.5.0", "patch": "2.4.6"} {
		if got, _ := a.Bump(part); got.String() != want {
			t.Errorf("bump %s = %s", part, got)
		}
	}
}

func TestParseCandidateID(t *testing.T) {
	for in, want := range map[string][2]int{"112": {112, 0}, "112.1": {112, 1}, "RC 7": {7, 0}, "rc-7.2": {7, 2}} {
		n, p, err := ParseCandidateID(in)
		if err != nil || n != want[0] || p != want[1] {
			t.Errorf("%q = %d.%d, %v", in, n, p, err)
		}
	}
	for _, bad := range []string{"", "0", "1.0", "x", "1.2.3", "-1", "1;2"} {
		if _, _, err := ParseCandidateID(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if (Candidate{Number: 112, Patch: 1}).Label() != "RC 112.1" {
		t.Error("label")
	}
}

func TestVersion_Less(t *testing.T) {
	for _, tc := range []struct{ lo, hi string }{
		{"2.4.5", "2.10.0"},
		{"3.0.0-rc.1", "3.0.0"},
		{"3.0.0-rc.9", "3.0.0-rc.10"},
		{"3.0.0-rc.2", "3.0.0-rc.10"},
		{"3.0.0-alpha", "3.0.0-alpha.1"},
		{"3.0.0-alpha.1", "3.0.0-alpha.beta"},
		{"3.0.0-beta.11", "3.0.0-rc.1"},
		{"3.0.0-9", "3.0.0-rc"},
	} {
		lo, err := ParseVersion(tc.lo)
		if err != nil {
			t.Fatal(err)
		}
		hi, err := ParseVersion(tc.hi)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := lo.Less(hi), true; got != want {
			t.Errorf("%s < %s = %v, want %v", tc.lo, tc.hi, got, want)
		}
		if got, want := hi.Less(lo), false; got != want {
			t.Errorf("%s < %s = %v, want %v", tc.hi, tc.lo, got, want)
		}
	}
}
