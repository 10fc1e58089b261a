package policy

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cutover/cutover/internal/yamlfield"
)

// Windows is the configuration of deploy windows, as written in the
// policy file: ranges of wall-clock time in one time zone.
type Windows struct {
	Timezone string   `json:"timezone,omitempty"` // IANA name; "" is UTC
	Deny     []string `json:"deny,omitempty"`     // no deploy inside any of these
	Allow    []string `json:"allow,omitempty"`    // if given, deploys only inside one of these
}

// ErrNeverAllowed means the windows allow no instant from the given time on.
var ErrNeverAllowed = errors.New("the deploy windows allow no time from now on")

const (
	minutesPerDay  = 24 * 60
	minutesPerWeek = 7 * minutesPerDay
	// Years a date range may name: enough for any plan, and a bound on the
	// search for the next allowed time.
	minYear, maxYear = 2000, 2199
)

// RangeExamples says what a range may look like, for error messages.
const RangeExamples = `want "DAY HH:MM - DAY HH:MM" (days Mon..Sun, 24-hour times, e.g. "Fri 12:00 - Mon 06:00") or "YYYY-MM-DD - YYYY-MM-DD" (whole days, e.g. "2026-12-20 - 2027-01-03")`

// Range is one parsed window: weekly (a start day and time and a length)
// or dated (whole days from one date to another, inclusive).
type Range struct {
	text   string
	weekly bool
	start  int // weekly: minutes from Monday 00:00
	length int // weekly: minutes, 1..minutesPerWeek
	from   civil
	to     civil // dated: the day after the last day
}

// civil is a calendar date without a zone.
type civil struct {
	y int
	m time.Month
	d int
}

func (c civil) add(days, minutes int) time.Time {
	return time.Date(c.y, c.m, c.d+days, 0, minutes, 0, 0, time.UTC)
}

// String is the range's canonical text.
func (r Range) String() string { return r.text }

// Weekly says whether the range repeats every week.
func (r Range) Weekly() bool { return r.weekly }

var (
	weeklyPattern = regexp.MustCompile(`^([A-Za-z]+)\s+(\d{1,2}):(\d{2})\s*-\s*([A-Za-z]+)\s+(\d{1,2}):(\d{2})$`)
	datedPattern  = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2})(?:\s*-\s*(\d{4}-\d{2}-\d{2}))?$`)
	dayNames      = []string{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
	longDayNames  = []string{"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
)

// ParseRange parses one range: "Fri 12:00 - Mon 06:00" (weekly; may cross
// midnight and the end of the week; 24:00 is the end of a day) or
// "2026-12-20 - 2027-01-03" (whole days, inclusive; one date is one day).
func ParseRange(s string) (Range, error) {
	s = strings.TrimSpace(s)
	if m := weeklyPattern.FindStringSubmatch(s); m != nil {
		return parseWeekly(s, m)
	}
	if m := datedPattern.FindStringSubmatch(s); m != nil {
		return parseDated(s, m)
	}
	return Range{}, fmt.Errorf("%q is not a range: %s", s, RangeExamples)
}

func parseWeekly(s string, m []string) (Range, error) {
	var at [2]int
	var text [2]string
	for i := range 2 {
		day, hh, mm := m[1+3*i], m[2+3*i], m[3+3*i]
		d := dayIndex(day)
		if d < 0 {
			msg := fmt.Sprintf("%q: %q is not a day (want one of %s)", s, day, strings.Join(dayNames, ", "))
			if sug := yamlfield.Suggest(day, dayNames); sug != "" {
				msg = fmt.Sprintf("%q: %q is not a day (did you mean %s? want one of %s)", s, day, sug, strings.Join(dayNames, ", "))
			}
			return Range{}, errors.New(msg)
		}
		h, _ := strconv.Atoi(hh)
		mi, _ := strconv.Atoi(mm)
		if h > 24 || mi > 59 || h == 24 && mi != 0 {
			return Range{}, fmt.Errorf("%q: %s:%s is not a time of day (want 00:00 to 23:59, or 24:00 for the end of a day)", s, hh, mm)
		}
		at[i] = d*minutesPerDay + h*60 + mi
		text[i] = fmt.Sprintf("%s %02d:%02d", dayNames[d], h, mi)
	}
	if at[0] == at[1] {
		return Range{}, fmt.Errorf("%q starts and ends at the same time: give a range (for the whole week: Mon 00:00 - Sun 24:00)", s)
	}
	length := at[1] - at[0]
	if length <= 0 {
		length += minutesPerWeek
	}
	return Range{text: text[0] + " - " + text[1], weekly: true, start: at[0] % minutesPerWeek, length: length}, nil
}

func dayIndex(s string) int {
	l := strings.ToLower(s)
	for i := range dayNames {
		if l == strings.ToLower(dayNames[i]) || l == longDayNames[i] {
			return i
		}
	}
	return -1
}

func parseDated(s string, m []string) (Range, error) {
	if m[2] == "" {
		m[2] = m[1]
	}
	var days [2]civil
	for i, v := range m[1:3] {
		t, err := time.Parse(time.DateOnly, v)
		if err != nil {
			return Range{}, fmt.Errorf("%q: %s is not a date (YYYY-MM-DD)", s, v)
		}
		if t.Year() < minYear || t.Year() > maxYear {
			return Range{}, fmt.Errorf("%q: %s is out of range (years %d to %d)", s, v, minYear, maxYear)
		}
		days[i] = civil{t.Year(), t.Month(), t.Day()}
	}
	from, last := days[0].add(0, 0), days[1].add(0, 0)
	if last.Before(from) {
		return Range{}, fmt.Errorf("%q ends before it starts", s)
	}
	next := days[1].add(1, 0)
	text := m[1]
	if m[2] != m[1] {
		text += " - " + m[2]
	}
	return Range{text: text, from: days[0], to: civil{next.Year(), next.Month(), next.Day()}}, nil
}

// Schedule is a parsed Windows: a time zone and its deny and allow ranges.
// The zero Schedule (and a nil one) allows every time.
type Schedule struct {
	loc   *time.Location
	deny  []Range
	allow []Range
	last  civil // the latest end of a dated range: after it, the schedule is weekly
}

// Parse checks the windows and returns their schedule. Errors name the
// field (timezone, deny[i], allow[i]) and what is accepted; all are
// returned, joined.
func (w Windows) Parse() (*Schedule, error) {
	var errs []error
	s := &Schedule{}
	loc, err := LoadZone(w.Timezone)
	if err != nil {
		errs = append(errs, fmt.Errorf("timezone: %w", err))
	}
	s.loc = loc
	for _, list := range []struct {
		name string
		src  []string
		dst  *[]Range
	}{{"deny", w.Deny, &s.deny}, {"allow", w.Allow, &s.allow}} {
		for i, text := range list.src {
			r, err := ParseRange(text)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s[%d]: %w", list.name, i, err))
				continue
			}
			*list.dst = append(*list.dst, r)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s.index()
	return s, nil
}

// NewSchedule builds a schedule from ranges that are already parsed.
func NewSchedule(loc *time.Location, deny, allow []Range) *Schedule {
	s := &Schedule{loc: loc, deny: deny, allow: allow}
	s.index()
	return s
}

func (s *Schedule) index() {
	if s.loc == nil {
		s.loc = time.UTC
	}
	for _, r := range append(s.deny[:len(s.deny):len(s.deny)], s.allow...) {
		if !r.weekly && r.to.add(0, 0).After(s.last.add(0, 0)) {
			s.last = r.to
		}
	}
}

// LoadZone loads an IANA time zone; "" is UTC. "Local" is refused: it
// would depend on the server's settings.
func LoadZone(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil || name == "Local" {
		return time.UTC, fmt.Errorf("%q is not an IANA time zone name (e.g. UTC, Europe/Berlin, America/New_York)", name)
	}
	return loc, nil
}

// Windows returns the schedule's configuration in canonical form.
func (s *Schedule) Windows() Windows {
	if s == nil {
		return Windows{}
	}
	w := Windows{}
	if s.loc != time.UTC {
		w.Timezone = s.loc.String()
	}
	for _, r := range s.deny {
		w.Deny = append(w.Deny, r.text)
	}
	for _, r := range s.allow {
		w.Allow = append(w.Allow, r.text)
	}
	return w
}

// Location is the zone the ranges are read in.
func (s *Schedule) Location() *time.Location {
	if s == nil || s.loc == nil {
		return time.UTC
	}
	return s.loc
}

// Check says whether a deploy may start at t. When it may not, window is
// the text of the deny range that refuses it (or, outside every allow
// range, a sentence that lists them), and next is the first allowed
// instant after t in the schedule's zone; zero when there is none (see
// NextAllowed). When it may, window is "" and next is t in the zone.
func (s *Schedule) Check(t time.Time) (allowed bool, window string, next time.Time) {
	if s == nil {
		return true, "", t
	}
	t = t.In(s.loc)
	if window = s.refusal(t); window == "" {
		return true, "", t
	}
	next, _ = s.NextAllowed(t)
	return false, window, next
}

func (s *Schedule) refusal(t time.Time) string {
	for _, r := range s.deny {
		if _, ok := r.containing(s.loc, t); ok {
			return r.text
		}
	}
	if len(s.allow) == 0 {
		return ""
	}
	texts := make([]string, len(s.allow))
	for i, r := range s.allow {
		if _, ok := r.containing(s.loc, t); ok {
			return ""
		}
		texts[i] = r.text
	}
	return "outside the allowed windows (" + strings.Join(texts, ", ") + ")"
}

// NextAllowed returns the first instant at or after t when a deploy may
// start, in the schedule's zone; ErrNeverAllowed when there is none.
func (s *Schedule) NextAllowed(t time.Time) (time.Time, error) {
	if s == nil {
		return t, nil
	}
	cur := t.In(s.loc)
	// After the last dated range the schedule repeats every week, so a
	// week and a margin for daylight saving beyond it is enough to look.
	horizon := cur
	if l := wallInstant(s.loc, s.last.add(0, 0)); l.After(horizon) {
		horizon = l
	}
	horizon = horizon.AddDate(0, 0, 8)
	for !cur.After(horizon) {
		if end, ok := s.denyEnd(cur); ok {
			cur = end
			continue
		}
		if len(s.allow) == 0 || s.inAllow(cur) {
			return cur, nil
		}
		start, ok := s.nextAllowStart(cur)
		if !ok {
			break
		}
		cur = start
	}
	return time.Time{}, ErrNeverAllowed
}

// denyEnd returns the latest end of the deny ranges that contain t.
func (s *Schedule) denyEnd(t time.Time) (time.Time, bool) {
	var end time.Time
	for _, r := range s.deny {
		if iv, ok := r.containing(s.loc, t); ok && iv.end.After(end) {
			end = iv.end
		}
	}
	return end, !end.IsZero()
}

func (s *Schedule) inAllow(t time.Time) bool {
	for _, r := range s.allow {
		if _, ok := r.containing(s.loc, t); ok {
			return true
		}
	}
	return false
}

// nextAllowStart returns the earliest start of an allow range after t.
func (s *Schedule) nextAllowStart(t time.Time) (time.Time, bool) {
	var best time.Time
	for _, r := range s.allow {
		for _, iv := range r.occurrences(s.loc, t) {
			if iv.start.After(t) && (best.IsZero() || iv.start.Before(best)) {
				best = iv.start
			}
		}
	}
	return best, !best.IsZero()
}

// interval is one occurrence of a range: [start, end) in absolute time.
type interval struct{ start, end time.Time }

// occurrences returns the range's occurrences that may contain t or start
// soon after it: for a weekly range, those starting in the week before
// t's, in t's and in the one after (an occurrence lasts at most a week).
func (r Range) occurrences(loc *time.Location, t time.Time) []interval {
	if !r.weekly {
		return []interval{{wallInstant(loc, r.from.add(0, 0)), wallInstant(loc, r.to.add(0, 0))}}
	}
	wall := t.In(loc)
	monday := civil{wall.Year(), wall.Month(), wall.Day() - (int(wall.Weekday())+6)%7}
	out := make([]interval, 0, 3)
	for week := -1; week <= 1; week++ {
		start := monday.add(7*week, r.start)
		out = append(out, interval{wallInstant(loc, start), wallInstant(loc, start.Add(time.Duration(r.length)*time.Minute))})
	}
	return out
}

// containing returns the occurrence of the range that contains t.
func (r Range) containing(loc *time.Location, t time.Time) (interval, bool) {
	for _, iv := range r.occurrences(loc, t) {
		if !t.Before(iv.start) && t.Before(iv.end) {
			return iv, true
		}
	}
	return interval{}, false
}

// wallInstant returns the instant at which the clocks of loc first read the
// wall-clock time w (given as a UTC time). Across a daylight-saving change
// a wall-clock time may not exist (the clocks jump over it: the answer is
// the instant of the jump, the first one reading later than w) or exist
// twice (the clocks go back: the answer is the first).
func wallInstant(loc *time.Location, w time.Time) time.Time {
	wu := w.Unix()
	_, offA := time.Unix(wu-86400, 0).In(loc).Zone()
	_, offB := time.Unix(wu+86400, 0).In(loc).Zone()
	var best time.Time
	for _, off := range []int{offA, offB} {
		t := time.Unix(wu-int64(off), 0).In(loc)
		if sameWall(t, w) && (best.IsZero() || t.Before(best)) {
			best = t
		}
	}
	if !best.IsZero() {
		return best
	}
	// In the gap: read with the earlier (smaller) offset, w falls just
	// after the jump; the zone then in effect starts at the jump.
	start, _ := time.Unix(wu-int64(min(offA, offB)), 0).In(loc).ZoneBounds()
	if start.IsZero() {
		return time.Unix(wu-int64(min(offA, offB)), 0).In(loc)
	}
	return start.In(loc)
}

func sameWall(t, w time.Time) bool {
	y, m, d := t.Date()
	wy, wm, wd := w.Date()
	return y == wy && m == wm && d == wd && t.Hour() == w.Hour() && t.Minute() == w.Minute() && t.Second() == w.Second()
}
