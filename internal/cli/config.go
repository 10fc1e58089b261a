package cli

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cutover/cutover/internal/deploy"
)

// secretMask stands for a secret value in `config show`.
const secretMask = "******"

func newConfigCmd(c *control) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Manage per-environment config (a new version per change)"}
	cmd.AddCommand(newConfigSetCmd(c), newConfigUnsetCmd(c), newConfigShowCmd(c))
	return cmd
}

func newConfigSetCmd(c *control) *cobra.Command {
	var secrets, secretFiles []string
	var secretStdin string
	var replace bool
	cmd := &cobra.Command{
		Use:   "set APP ENV [KEY=VALUE...] [--secret-file KEY=PATH...] [--secret-stdin KEY] [--replace]",
		Short: "Set config keys in a new version; it goes live with the next deployment",
		Long: `Records a new config version for the environment: the latest version with
the given keys set. Every other key and secret is kept; a key given as a plain
value that was a secret becomes a plain value, and the reverse. --replace makes
the given keys the whole new version instead.

Secret values are stored encrypted and never shown again. Give them with
--secret-file KEY=PATH (the file's content, one trailing newline trimmed) or
--secret-stdin KEY (standard input, one trailing newline trimmed).
--secret KEY=VALUE works too but puts the value on the command line, where
other users of the machine can see it. Secrets are at least 4 bytes, so that
logs can be redacted of them.

Deploy the live commit again to make a config-only release.`,
		Example: `  cutover config set hello production LOG_LEVEL=debug --secret-file API_KEY=./api-key.txt
  vault read -field=key secret/hello | cutover config set hello production --secret-stdin API_KEY
  cutover config set hello production --replace LOG_LEVEL=info --secret-file API_KEY=./api-key.txt
  cutover deploy hello production`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usagef("config set takes APP ENV and KEY=VALUE pairs (see --help)")
			}
			return validAppEnv(args[:2])
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ch := deploy.ConfigChange{Vars: map[string]string{}, Secrets: map[string]string{}, Replace: replace}
			seen := map[string]string{}
			add := func(m map[string]string, k, v, from string) error {
				if prev, ok := seen[k]; ok {
					return usagef("config key %q is given twice (%s and %s)", k, prev, from)
				}
				seen[k] = from
				m[k] = v
				return nil
			}
			for _, a := range args[2:] {
				k, v, err := pair(a, "KEY=VALUE")
				if err != nil {
					return err
				}
				if err := add(ch.Vars, k, v, "KEY=VALUE"); err != nil {
					return err
				}
			}
			if len(secrets) > 0 {
				eprintf(cmd, "warning: --secret puts the value on the command line, where other users of this machine can see it (ps, /proc); prefer --secret-file or --secret-stdin\n")
			}
			for _, a := range secrets {
				k, v, err := pair(a, "KEY=VALUE")
				if err != nil {
					return err
				}
				if err := add(ch.Secrets, k, v, "--secret"); err != nil {
					return err
				}
			}
			for _, a := range secretFiles {
				k, path, err := pair(a, "KEY=PATH")
				if err != nil {
					return err
				}
				v, err := readSecretFile(k, path)
				if err != nil {
					return err
				}
				if err := add(ch.Secrets, k, v, "--secret-file"); err != nil {
					return err
				}
			}
			if secretStdin != "" {
				v, err := readSecretStdin(cmd, secretStdin)
				if err != nil {
					return err
				}
				if err := add(ch.Secrets, secretStdin, v, "--secret-stdin"); err != nil {
					return err
				}
			}
			if len(seen) == 0 {
				return usagef("config set needs at least one KEY=VALUE, --secret-file, --secret-stdin or --secret (to remove keys: cutover config unset)")
			}
			cl, err := c.client()
			if err != nil {
				return err
			}
			res, err := cl.ChangeConfig(cmd.Context(), args[0], args[1], ch)
			if err != nil {
				return err
			}
			return printConfigResult(c, cmd, res)
		},
	}
	cmd.Flags().StringArrayVar(&secretFiles, "secret-file", nil, "KEY=PATH: a secret read from a file, one trailing newline trimmed (repeatable)")
	cmd.Flags().StringVar(&secretStdin, "secret-stdin", "", "KEY: a secret read from standard input, one trailing newline trimmed")
	cmd.Flags().StringArrayVar(&secrets, "secret", nil, "KEY=VALUE stored encrypted (repeatable; visible to other users in ps: prefer --secret-file)")
	cmd.Flags().BoolVar(&replace, "replace", false, "make the given keys the whole new version (drop every other key and secret)")
	return cmd
}

func newConfigUnsetCmd(c *control) *cobra.Command {
	return &cobra.Command{
		Use:     "unset APP ENV KEY...",
		Short:   "Remove config keys in a new version; it goes live with the next deployment",
		Long:    "Records a new config version for the environment: the latest version without\nthe given keys (plain or secret). A key that is not set is an error.",
		Example: "  cutover config unset hello production LOG_LEVEL OLD_API_KEY\n  cutover deploy hello production",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 3 {
				return usagef("config unset takes APP ENV and one or more KEYs (see --help)")
			}
			return validAppEnv(args[:2])
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			res, err := cl.ChangeConfig(cmd.Context(), args[0], args[1], deploy.ConfigChange{Unset: args[2:]})
			if err != nil {
				return err
			}
			return printConfigResult(c, cmd, res)
		},
	}
}

func newConfigShowCmd(c *control) *cobra.Command {
	var version int
	cmd := &cobra.Command{
		Use:     "show APP ENV [--version N]",
		Short:   "Show a config version: plain values, and secrets by name only",
		Example: "  cutover config show hello production\n  cutover config show hello production --version 3 --output json",
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if version < 0 {
				return usagef("--version %d: want a config version (1 or more)", version)
			}
			cl, err := c.forApp(args...)
			if err != nil {
				return err
			}
			cv, err := cl.Config(cmd.Context(), args[0], args[1], version)
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), cv)
			}
			if cv.Version == 0 {
				printf(cmd, "no config for %s/%s yet\n", args[0], args[1])
				return nil
			}
			printf(cmd, "# config v%d of %s/%s, %s\n", cv.Version, cv.App, cv.Env, cv.CreatedAt.Local().Format(time.DateTime))
			lines := make([]string, 0, len(cv.Vars)+len(cv.SecretKeys))
			for k, v := range cv.Vars {
				if strings.ContainsAny(v, "\n\r") {
					v = strconv.Quote(v)
				}
				lines = append(lines, k+"="+v)
			}
			for _, k := range cv.SecretKeys {
				lines = append(lines, k+"="+secretMask)
			}
			slices.Sort(lines)
			for _, l := range lines {
				printf(cmd, "%s\n", l)
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&version, "version", 0, "config version to show (default: the latest)")
	return cmd
}

func printConfigResult(c *control, cmd *cobra.Command, res deploy.ConfigResult) error {
	if c.json() {
		return printJSON(cmd.OutOrStdout(), res)
	}
	if res.Unchanged {
		printf(cmd, "config of %s/%s unchanged: still v%d\n", res.App, res.Env, res.Version)
		return nil
	}
	printf(cmd, "config v%d for %s/%s: %s\n", res.Version, res.App, res.Env, res.Summary())
	printf(cmd, "keys: %s\n", keysOrNone(slices.Sorted(maps.Keys(res.Vars)), res.SecretKeys))
	return nil
}

func keysOrNone(vars, secrets []string) string {
	keys := slices.Clone(vars)
	for _, k := range secrets {
		keys = append(keys, k+" (secret)")
	}
	if len(keys) == 0 {
		return "none"
	}
	return strings.Join(keys, ", ")
}

func pair(a, want string) (string, string, error) {
	k, v, ok := strings.Cut(a, "=")
	if !ok || k == "" {
		return "", "", usagef("%q: want %s", a, want)
	}
	return k, v, nil
}

// trimNewline removes one trailing newline ("\n" or "\r\n"), the one an
// editor or echo adds.
func trimNewline(s string) string {
	s, ok := strings.CutSuffix(s, "\n")
	if ok {
		s = strings.TrimSuffix(s, "\r")
	}
	return s
}

func readSecretFile(key, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("secret %s: %w", key, err)
	}
	defer f.Close()
	return readSecret(key, f, path)
}

func readSecretStdin(cmd *cobra.Command, key string) (string, error) {
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			// A person at a terminal types one line.
			eprintf(cmd, "value of secret %s (one line; it is shown as you type): ", key)
			line, err := bufio.NewReader(io.LimitReader(f, deploy.MaxConfigSize+1)).ReadString('\n')
			if err != nil && err != io.EOF {
				return "", fmt.Errorf("secret %s from standard input: %w", key, err)
			}
			return readSecret(key, strings.NewReader(line), "standard input")
		}
	}
	return readSecret(key, in, "standard input")
}

// readSecret reads one value, bounded by the largest config there can be.
func readSecret(key string, r io.Reader, from string) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, deploy.MaxConfigSize+1))
	if err != nil {
		return "", fmt.Errorf("secret %s from %s: %w", key, from, err)
	}
	if len(b) > deploy.MaxConfigSize {
		return "", fmt.Errorf("secret %s from %s: more than %d bytes (the largest config)", key, from, deploy.MaxConfigSize)
	}
	return trimNewline(string(b)), nil
}
