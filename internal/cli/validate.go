package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cutover/cutover/internal/manifest"
)

// validateResult is what `cutover validate --output json` prints.
type validateResult struct {
	File         string          `json:"file"`
	Valid        bool            `json:"valid"`
	Errors       []validateError `json:"errors"`
	Environments []string        `json:"environments"`
}

type validateError struct {
	Line    int    `json:"line,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
	Error   string `json:"error"` // the whole line as the text output prints it
}

// newValidateCmd checks a manifest locally: it needs no server and no token.
func newValidateCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "validate [FILE]",
		Short: "Check a cutover.yml locally, without a server",
		Long: `Parses and validates a manifest exactly as the server does when it builds a
commit, and prints every problem with its line and field path. FILE defaults
to ./cutover.yml; a directory means DIR/cutover.yml and - reads standard input.
Exit code 0 when the file is valid, 1 when it is not.`,
		Example: `  cutover validate
  cutover validate deploy/cutover.yml --output json
  git show HEAD:cutover.yml | cutover validate -`,
		Args: maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return usagef("--output %q: want text or json", output)
			}
			path := manifest.FileName
			if len(args) == 1 {
				path = args[0]
			}
			res := validate(cmd, path)
			if output == "json" {
				if err := printJSON(cmd.OutOrStdout(), res); err != nil {
					return err
				}
			} else if res.Valid {
				printf(cmd, "%s: valid (%d environment%s: %s)\n", res.File, len(res.Environments), plural(len(res.Environments)), strings.Join(res.Environments, ", "))
			} else {
				for _, e := range res.Errors {
					printf(cmd, "%s\n", e.Error)
				}
			}
			if !res.Valid {
				return fmt.Errorf("%s: %d problem%s", res.File, len(res.Errors), plural(len(res.Errors)))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

// validate reads and parses path; every problem, reading included, is in
// the result.
func validate(cmd *cobra.Command, path string) validateResult {
	res := validateResult{File: path, Errors: []validateError{}, Environments: []string{}}
	data, err := readManifest(cmd, path, &res.File)
	if err != nil {
		res.Errors = append(res.Errors, validateError{Message: err.Error(), Error: err.Error()})
		return res
	}
	m, err := manifest.Parse(data)
	if err != nil {
		errs := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		}
		for _, e := range errs {
			var fe *manifest.FieldError
			if errors.As(e, &fe) {
				res.Errors = append(res.Errors, validateError{Line: fe.Line, Field: fe.Field, Message: fe.Msg, Error: fe.In(res.File)})
			} else {
				res.Errors = append(res.Errors, validateError{Message: e.Error(), Error: res.File + ": " + e.Error()})
			}
		}
		return res
	}
	res.Valid = true
	for _, e := range m.Environments {
		res.Environments = append(res.Environments, e.Name)
	}
	return res
}

// readManifest reads path (a file, a directory holding cutover.yml, or -
// for standard input) and sets name to what errors should call it.
func readManifest(cmd *cobra.Command, path string, name *string) ([]byte, error) {
	var r io.Reader
	if path == "-" {
		*name = manifest.FileName
		r = cmd.InOrStdin()
	} else {
		if fi, err := os.Stat(path); err == nil && fi.IsDir() {
			path = filepath.Join(path, manifest.FileName)
			*name = path
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	// One byte more than the limit, so Parse can say the file is too large.
	return io.ReadAll(io.LimitReader(r, manifest.MaxManifestBytes+1))
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
