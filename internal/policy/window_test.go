package policy

import (
	"errors"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the tests do not depend on the machine's zone files
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSchedule_Check(t *testing.T) {
	t.Parallel()
	weekend := []string{"Fri 12:00 - Mon 06:00"}
	const ny = "America/New_York"
	workdays := []string{"Mon 09:00 - Mon 16:00", "Tue 09:00 - Tue 16:00", "Wed 09:00 - Wed 16:00", "Thu 09:00 - Thu 16:00"}
	for _, tc := range []struct {
		name   string
		w      Windows
		at     string
		window string // "" when allowed
		next   string // RFC 3339; "" for none
	}{
		// A weekly range that crosses midnight and the end of the week (UTC).
		{"weekend: thursday", Windows{Deny: weekend}, "2026-01-08T10:00:00Z", "", ""},
		{"weekend: just before", Windows{Deny: weekend}, "2026-01-09T11:59:59Z", "", ""},
		{"weekend: starts", Windows{Deny: weekend}, "2026-01-09T12:00:00Z", "Fri 12:00 - Mon 06:00", "2026-01-12T06:00:00Z"},
		{"weekend: sunday night", Windows{Deny: weekend}, "2026-01-11T23:59:00Z", "Fri 12:00 - Mon 06:00", "2026-01-12T06:00:00Z"},
		{"weekend: monday early", Windows{Deny: weekend}, "2026-01-12T05:59:59Z", "Fri 12:00 - Mon 06:00", "2026-01-12T06:00:00Z"},
		{"weekend: ends", Windows{Deny: weekend}, "2026-01-12T06:00:00Z", "", ""},
		{"midnight: before", Windows{Deny: []string{"Tue 22:00 - Wed 02:00"}}, "2026-01-06T21:59:00Z", "", ""},
		{"midnight: tuesday", Windows{Deny: []string{"Tue 22:00 - Wed 02:00"}}, "2026-01-06T23:30:00Z", "Tue 22:00 - Wed 02:00", "2026-01-07T02:00:00Z"},
		{"midnight: wednesday", Windows{Deny: []string{"Tue 22:00 - Wed 02:00"}}, "2026-01-07T01:00:00Z", "Tue 22:00 - Wed 02:00", "2026-01-07T02:00:00Z"},
		{"week end: monday", Windows{Deny: []string{"sunday 22:00 - MON 2:00"}}, "2026-01-12T01:00:00Z", "Sun 22:00 - Mon 02:00", "2026-01-12T02:00:00Z"},
		{"whole day", Windows{Deny: []string{"Sat 00:00 - Sat 24:00"}}, "2026-01-10T23:59:59Z", "Sat 00:00 - Sat 24:00", "2026-01-11T00:00:00Z"},
		// The zone is the window's, whatever the zone of t.
		{"zone of the window", Windows{Timezone: ny, Deny: weekend}, "2026-01-09T16:30:00Z", "", ""},
		{"zone of the window: denied", Windows{Timezone: ny, Deny: weekend}, "2026-01-09T17:00:00Z", "Fri 12:00 - Mon 06:00", "2026-01-12T06:00:00-05:00"},
		// A date freeze across the new year, in New York, and with the weekend.
		{"freeze: day before", Windows{Timezone: ny, Deny: []string{"2026-12-20 - 2027-01-03"}}, "2026-12-19T23:59:59-05:00", "", ""},
		{"freeze: first day", Windows{Timezone: ny, Deny: []string{"2026-12-20 - 2027-01-03"}}, "2026-12-20T00:00:00-05:00", "2026-12-20 - 2027-01-03", "2027-01-04T00:00:00-05:00"},
		{"freeze: new year", Windows{Timezone: ny, Deny: []string{"2026-12-20 - 2027-01-03"}}, "2027-01-01T12:00:00-05:00", "2026-12-20 - 2027-01-03", "2027-01-04T00:00:00-05:00"},
		{"freeze: last minute", Windows{Timezone: ny, Deny: []string{"2026-12-20 - 2027-01-03"}}, "2027-01-03T23:59:00-05:00", "2026-12-20 - 2027-01-03", "2027-01-04T00:00:00-05:00"},
		{"freeze: over", Windows{Timezone: ny, Deny: []string{"2026-12-20 - 2027-01-03"}}, "2027-01-04T00:00:00-05:00", "", ""},
		{"freeze: utc instant", Windows{Timezone: ny, Deny: []string{"2026-12-20 - 2027-01-03"}}, "2027-01-04T04:59:59Z", "2026-12-20 - 2027-01-03", "2027-01-04T00:00:00-05:00"},
		{"freeze then weekend", Windows{Timezone: ny, Deny: []string{"Fri 12:00 - Mon 06:00", "2026-12-20 - 2027-01-03"}}, "2026-12-21T10:00:00-05:00", "2026-12-20 - 2027-01-03", "2027-01-04T06:00:00-05:00"},
		{"one date", Windows{Deny: []string{"2026-12-25"}}, "2026-12-25T18:00:00Z", "2026-12-25", "2026-12-26T00:00:00Z"},
		// Spring forward (2026-03-08 02:00 EST -> 03:00 EDT): the range
		// still ends at 03:30 on the clocks, which is 4.5 hours after 22:00.
		{"spring: saturday night", Windows{Timezone: ny, Deny: []string{"Sat 22:00 - Sun 03:30"}}, "2026-03-07T22:00:00-05:00", "Sat 22:00 - Sun 03:30", "2026-03-08T03:30:00-04:00"},
		{"spring: before the jump", Windows{Timezone: ny, Deny: []string{"Sat 22:00 - Sun 03:30"}}, "2026-03-08T01:59:59-05:00", "Sat 22:00 - Sun 03:30", "2026-03-08T03:30:00-04:00"},
		{"spring: after the jump", Windows{Timezone: ny, Deny: []string{"Sat 22:00 - Sun 03:30"}}, "2026-03-08T03:29:59-04:00", "Sat 22:00 - Sun 03:30", "2026-03-08T03:30:00-04:00"},
		{"spring: ends", Windows{Timezone: ny, Deny: []string{"Sat 22:00 - Sun 03:30"}}, "2026-03-08T03:30:00-04:00", "", ""},
		// A range that starts at a time the clocks skip starts at the jump.
		{"spring: start skipped, before", Windows{Timezone: ny, Deny: []string{"Sun 02:30 - Sun 05:00"}}, "2026-03-08T01:59:59-05:00", "", ""},
		{"spring: start skipped, at the jump", Windows{Timezone: ny, Deny: []string{"Sun 02:30 - Sun 05:00"}}, "2026-03-08T03:00:00-04:00", "Sun 02:30 - Sun 05:00", "2026-03-08T05:00:00-04:00"},
		{"spring: a week before", Windows{Timezone: ny, Deny: []string{"Sun 02:30 - Sun 05:00"}}, "2026-03-01T02:29:00-05:00", "", ""},
		{"spring: a week before, inside", Windows{Timezone: ny, Deny: []string{"Sun 02:30 - Sun 05:00"}}, "2026-03-01T02:30:00-05:00", "Sun 02:30 - Sun 05:00", "2026-03-01T05:00:00-05:00"},
		// Fall back (2026-11-01 02:00 EDT -> 01:00 EST): 5.5 hours.
		{"fall: saturday night", Windows{Timezone: ny, Deny: []string{"Sat 22:00 - Sun 03:30"}}, "2026-10-31T23:00:00-04:00", "Sat 22:00 - Sun 03:30", "2026-11-01T03:30:00-05:00"},
		{"fall: second 01:30", Windows{Timezone: ny, Deny: []string{"Sat 22:00 - Sun 03:30"}}, "2026-11-01T01:30:00-05:00", "Sat 22:00 - Sun 03:30", "2026-11-01T03:30:00-05:00"},
		{"fall: ends", Windows{Timezone: ny, Deny: []string{"Sat 22:00 - Sun 03:30"}}, "2026-11-01T03:30:00-05:00", "", ""},
		// A time the clocks read twice means the first one.
		{"fall: end repeated, inside", Windows{Timezone: ny, Deny: []string{"Sat 22:00 - Sun 01:30"}}, "2026-11-01T01:29:00-04:00", "Sat 22:00 - Sun 01:30", "2026-11-01T01:30:00-04:00"},
		{"fall: end repeated, after", Windows{Timezone: ny, Deny: []string{"Sat 22:00 - Sun 01:30"}}, "2026-11-01T01:15:00-05:00", "", ""},
		{"fall: start repeated", Windows{Timezone: ny, Deny: []string{"Sun 01:30 - Sun 04:00"}}, "2026-11-01T01:30:00-04:00", "Sun 01:30 - Sun 04:00", "2026-11-01T04:00:00-05:00"},
		// Allow only: work hours in Berlin.
		{"allow: inside", Windows{Timezone: "Europe/Berlin", Allow: workdays}, "2026-01-06T10:00:00+01:00", "", ""},
		{"allow: after hours", Windows{Timezone: "Europe/Berlin", Allow: workdays}, "2026-01-06T16:30:00+01:00", "outside the allowed windows (Mon 09:00 - Mon 16:00, Tue 09:00 - Tue 16:00, Wed 09:00 - Wed 16:00, Thu 09:00 - Thu 16:00)", "2026-01-07T09:00:00+01:00"},
		{"allow: friday", Windows{Timezone: "Europe/Berlin", Allow: workdays}, "2026-01-09T10:00:00+01:00", "outside the allowed windows (Mon 09:00 - Mon 16:00, Tue 09:00 - Tue 16:00, Wed 09:00 - Wed 16:00, Thu 09:00 - Thu 16:00)", "2026-01-12T09:00:00+01:00"},
		{"allow: across the summer-time change", Windows{Timezone: "Europe/Berlin", Allow: workdays}, "2026-03-27T10:00:00+01:00", "outside the allowed windows (Mon 09:00 - Mon 16:00, Tue 09:00 - Tue 16:00, Wed 09:00 - Wed 16:00, Thu 09:00 - Thu 16:00)", "2026-03-30T09:00:00+02:00"},
		// The next allowed moment is several ranges later.
		{"several: allow, freeze and a holiday", Windows{Timezone: ny, Allow: []string{"Mon 10:00 - Mon 12:00", "Wed 10:00 - Wed 12:00"}, Deny: []string{"2026-12-20 - 2027-01-03", "2027-01-04"}}, "2026-12-21T10:30:00-05:00", "2026-12-20 - 2027-01-03", "2027-01-06T10:00:00-05:00"},
		{"several: overlapping denies", Windows{Deny: []string{"Mon 00:00 - Mon 12:00", "Mon 11:00 - Tue 00:00", "Tue 00:00 - Tue 08:00"}}, "2026-01-05T01:00:00Z", "Mon 00:00 - Mon 12:00", "2026-01-06T08:00:00Z"},
		{"several: deny inside allow", Windows{Allow: []string{"Mon 09:00 - Mon 17:00"}, Deny: []string{"Mon 08:00 - Mon 10:00", "Mon 10:00 - Mon 11:00"}}, "2026-01-05T07:00:00Z", "outside the allowed windows (Mon 09:00 - Mon 17:00)", "2026-01-05T11:00:00Z"},
		// Always denied: no next allowed time.
		{"never: whole week", Windows{Deny: []string{"Mon 00:00 - Sun 24:00"}}, "2026-01-06T10:00:00Z", "Mon 00:00 - Sun 24:00", ""},
		{"never: two halves", Windows{Timezone: ny, Deny: []string{"Mon 00:00 - Thu 12:00", "Thu 12:00 - Mon 00:00"}}, "2026-03-06T10:00:00-05:00", "Thu 12:00 - Mon 00:00", ""},
		{"never: allow in the past", Windows{Allow: []string{"2026-01-01"}}, "2026-06-01T10:00:00Z", "outside the allowed windows (2026-01-01)", ""},
		{"never: allow all denied", Windows{Allow: []string{"Mon 09:00 - Mon 17:00"}, Deny: []string{"Mon 08:00 - Mon 18:00"}}, "2026-01-06T10:00:00Z", "outside the allowed windows (Mon 09:00 - Mon 17:00)", ""},
		// No ranges: always allowed.
		{"empty", Windows{}, "2026-01-06T10:00:00Z", "", ""},
	} {
		s, err := tc.w.Parse()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		at := mustTime(t, tc.at)
		allowed, window, next := s.Check(at)
		if allowed != (tc.window == "") || window != tc.window {
			t.Errorf("%s: Check(%s) = %v, %q; want window %q", tc.name, tc.at, allowed, window, tc.window)
			continue
		}
		if allowed {
			if !next.Equal(at) || next.Location() != s.Location() {
				t.Errorf("%s: allowed, next = %v, want t in the zone", tc.name, next)
			}
			continue
		}
		got := ""
		if !next.IsZero() {
			got = next.Format(time.RFC3339)
			if next.Location() != s.Location() {
				t.Errorf("%s: next is in %v, want %v", tc.name, next.Location(), s.Location())
			}
		}
		if got != tc.next {
			t.Errorf("%s: next allowed after %s = %q, want %q", tc.name, tc.at, got, tc.next)
		}
		n, err := s.NextAllowed(at)
		if (tc.next == "") != errors.Is(err, ErrNeverAllowed) || !n.Equal(next) {
			t.Errorf("%s: NextAllowed = %v, %v", tc.name, n, err)
		}
		if tc.next != "" {
			if ok, w, _ := s.Check(next); !ok {
				t.Errorf("%s: the next allowed time %s is refused by %s", tc.name, got, w)
			}
		}
	}
}

func TestWindows_ParseErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		w    Windows
		want string
	}{
		{Windows{Timezone: "America/New_Yrok"}, `timezone: "America/New_Yrok" is not an IANA time zone name (e.g. UTC, Europe/Berlin, America/New_York)`},
		{Windows{Timezone: "Local"}, `timezone: "Local" is not an IANA time zone name`},
		{Windows{Deny: []string{"Fri 12 - Mon 06:00"}}, `deny[0]: "Fri 12 - Mon 06:00" is not a range: want "DAY HH:MM - DAY HH:MM" (days Mon..Sun, 24-hour times, e.g. "Fri 12:00 - Mon 06:00") or "YYYY-MM-DD - YYYY-MM-DD" (whole days, e.g. "2026-12-20 - 2027-01-03")`},
		{Windows{Deny: []string{"weekends"}}, `deny[0]: "weekends" is not a range`},
		{Windows{Allow: []string{"Mon 09:00 - Fri 17:00", "Fry 12:00 - Mon 06:00"}}, `allow[1]: "Fry 12:00 - Mon 06:00": "Fry" is not a day (did you mean Fri? want one of Mon, Tue, Wed, Thu, Fri, Sat, Sun)`},
		{Windows{Deny: []string{"Xyz 12:00 - Mon 06:00"}}, `"Xyz" is not a day (want one of Mon`},
		{Windows{Deny: []string{"Fri 25:00 - Mon 06:00"}}, `deny[0]: "Fri 25:00 - Mon 06:00": 25:00 is not a time of day (want 00:00 to 23:59, or 24:00 for the end of a day)`},
		{Windows{Deny: []string{"Fri 12:60 - Mon 06:00"}}, `12:60 is not a time of day`},
		{Windows{Deny: []string{"Fri 24:30 - Mon 06:00"}}, `24:30 is not a time of day`},
		{Windows{Deny: []string{"Fri 12:00 - Fri 12:00"}}, `starts and ends at the same time: give a range (for the whole week: Mon 00:00 - Sun 24:00)`},
		{Windows{Deny: []string{"2027-01-03 - 2026-12-20"}}, `deny[0]: "2027-01-03 - 2026-12-20" ends before it starts`},
		{Windows{Deny: []string{"2026-02-30"}}, `deny[0]: "2026-02-30": 2026-02-30 is not a date (YYYY-MM-DD)`},
		{Windows{Deny: []string{"1999-12-31"}}, `1999-12-31 is out of range (years 2000 to 2199)`},
		{Windows{Deny: []string{"2026-12-20 - Mon 06:00"}}, `is not a range`},
	} {
		_, err := tc.w.Parse()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.w, err, tc.want)
		}
	}
	// Every problem is reported.
	_, err := Windows{Timezone: "Mars/Olympus", Deny: []string{"x", "Fri 12:00 - Mon 06:00", "y"}}.Parse()
	if err == nil || strings.Count(err.Error(), "\n") != 2 || !strings.Contains(err.Error(), "deny[2]") {
		t.Errorf("want three errors, got %v", err)
	}
}

func TestSchedule_Canonical(t *testing.T) {
	t.Parallel()
	s, err := Windows{Timezone: "Europe/Berlin", Deny: []string{" friday 9:05-MONDAY 6:00 ", "2026-12-20-2027-01-03", "2026-12-25 - 2026-12-25"}, Allow: []string{"Sun 24:00 - Mon 06:00"}}.Parse()
	if err != nil {
		t.Fatal(err)
	}
	w := s.Windows()
	got := w.Timezone + "|" + strings.Join(w.Deny, "|") + "|" + strings.Join(w.Allow, "|")
	if want := "Europe/Berlin|Fri 09:05 - Mon 06:00|2026-12-20 - 2027-01-03|2026-12-25|Sun 24:00 - Mon 06:00"; got != want {
		t.Errorf("canonical = %s, want %s", got, want)
	}
	if u, _ := (Windows{}).Parse(); u.Windows().Timezone != "" || u.Location() != time.UTC {
		t.Errorf("the default zone is UTC, not %v", u.Location())
	}
	var none *Schedule
	if ok, _, _ := none.Check(time.Now()); !ok {
		t.Error("a nil schedule refuses")
	}
}

func BenchmarkScheduleCheck(b *testing.B) {
	s, err := Windows{Timezone: "America/New_York", Deny: []string{"Fri 12:00 - Mon 06:00", "2026-12-20 - 2027-01-03"}}.Parse()
	if err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 12, 21, 10, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		if ok, _, _ := s.Check(at); ok {
			b.Fatal("allowed")
		}
	}
}
