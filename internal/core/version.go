package core

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/mod/semver"
)

// Version is a semantic version MAJOR.MINOR.PATCH with an optional
// pre-release suffix.
type Version struct {
	Major, Minor, Patch int
	Pre                 string
}

var semverPattern = regexp.MustCompile(`^v?(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})(?:-([0-9A-Za-z]+(?:\.[0-9A-Za-z]+)*))?$`)

// ParseVersion parses "2.4.5", "v2.4.5" or "3.0.0-rc.1" and refuses
// anything else, naming the value.
func ParseVersion(s string) (Version, error) {
	m := semverPattern.FindStringSubmatch(s)
	// semver.IsValid also refuses numeric pre-release identifiers with
	// leading zeros (rc.01), which Less could not order.
	if m == nil || len(s) > 64 || !semver.IsValid("v"+strings.TrimPrefix(s, "v")) {
		return Version{}, fmt.Errorf("%w: version %q: want MAJOR.MINOR.PATCH such as 2.4.5 (optionally v2.4.5 or 3.0.0-rc.1)", ErrInvalid, s)
	}
	var v Version
	v.Major, _ = strconv.Atoi(m[1])
	v.Minor, _ = strconv.Atoi(m[2])
	v.Patch, _ = strconv.Atoi(m[3])
	v.Pre = m[4]
	return v, nil
}

func (v Version) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
	if v.Pre != "" {
		s += "-" + v.Pre
	}
	return s
}

// Less orders versions by semantic-version precedence: a pre-release
// sorts before its release and numeric identifiers compare as numbers
// (3.0.0-rc.9 < 3.0.0-rc.10).
func (v Version) Less(o Version) bool {
	return semver.Compare("v"+v.String(), "v"+o.String()) < 0
}

// Bump returns the next version: part is "major", "minor" or "patch".
func (v Version) Bump(part string) (Version, error) {
	switch part {
	case "major":
		return Version{Major: v.Major + 1}, nil
	case "minor":
		return Version{Major: v.Major, Minor: v.Minor + 1}, nil
	case "patch":
		return Version{Major: v.Major, Minor: v.Minor, Patch: v.Patch + 1}, nil
	}
	return v, fmt.Errorf("%w: bump %q: want major, minor or patch", ErrInvalid, part)
}
