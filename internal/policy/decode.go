package policy

import "github.com/cutover/cutover/internal/yamlfield"

// decoder decodes a policy file with yamlfield: every error names the field
// path and line, and all of them are collected.
type decoder struct{ yamlfield.Decoder }

// aliases are names people write for a field from other tools.
var aliases = yamlfield.Aliases{
	"envs": "environments", "promote_from": "from", "rule": "require", "requires": "require",
	"required": "require", "when": "require", "approvers": "approvals", "reviewers": "approvals",
	"window": "windows", "tz": "timezone", "time_zone": "timezone", "zone": "timezone",
	"blackout": "deny", "freeze": "deny", "required_checks": "checks", "status_checks": "checks",
}

// str decodes an optional one-line string; "" when absent or refused.
func (d *decoder) str(e yamlfield.Entry, path string) string {
	if s, ok := d.OneLine(e, path); ok {
		return s
	}
	return ""
}
