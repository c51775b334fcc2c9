// composecheck loads compose files with compose-go, the parser and validator that
// `docker compose` itself uses (schema validation, interpolation from .env, merging of
// override files, profiles, env_file resolution), and prints the resolved project as JSON.
// With -context DIR it prints instead the files of DIR that a `docker build DIR` would send
// as its build context, one a line, matching DIR/.dockerignore with moby/patternmatcher, the
// matcher docker uses. tests/unit/test_compose.py builds it into a cache directory outside the
// repository and checks the security properties on its output, since no Docker engine runs here.
//
//	composecheck [-workdir DIR] [-profile NAME]... FILE...
//	composecheck -context DIR
//
// Exit status 1 and one line on stderr when a file does not parse or validate.
package main

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

type profiles []string

func (p *profiles) String() string { return strings.Join(*p, ",") }

func (p *profiles) Set(v string) error {
	*p = append(*p, v)
	return nil
}

// buildContext lists the regular files under root that .dockerignore lets through, walking the
// tree as docker's archiver does: an excluded directory is skipped unless an exception (!) may
// re-include something below it.
func buildContext(root string) error {
	var patterns []string
	if f, err := os.Open(filepath.Join(root, ".dockerignore")); err == nil {
		patterns, err = ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return err
		}
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return err
	}
	parents := map[string]patternmatcher.MatchInfo{}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil || rel == "." {
			return err
		}
		excluded, info, err := pm.MatchesUsingParentResults(rel, parents[filepath.Dir(rel)])
		if err != nil {
			return err
		}
		if d.IsDir() {
			parents[rel] = info
			if excluded {
				prefix := rel + string(filepath.Separator)
				for _, p := range pm.Patterns() {
					if p.Exclusion() && strings.HasPrefix(p.String()+string(filepath.Separator), prefix) {
						return nil
					}
				}
				return filepath.SkipDir
			}
			return nil
		}
		if !excluded && d.Type().IsRegular() {
			fmt.Println(rel)
		}
		return nil
	})
}

func main() {
	buildDir := flag.String("context", "", "list the build context of this directory instead")
	workdir := flag.String("workdir", ".", "the project directory (where .env is read from)")
	var active profiles
	flag.Var(&active, "profile", "a profile to enable (repeatable; '*' enables all)")
	flag.Parse()
	if *buildDir != "" {
		if err := buildContext(*buildDir); err != nil {
			fmt.Fprintf(os.Stderr, "composecheck: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "composecheck: name at least one compose file")
		os.Exit(2)
	}
	// The OS environment is left out on purpose: the result depends only on the files
	// and on the project's .env, as it does for a user who exports nothing.
	opts, err := cli.NewProjectOptions(flag.Args(),
		cli.WithWorkingDirectory(*workdir),
		cli.WithEnvFiles(),
		cli.WithDotEnv,
		cli.WithName("mood-monitor"),
		cli.WithProfiles(active),
	)
	if err == nil {
		var out []byte
		project, lerr := opts.LoadProject(context.Background())
		err = lerr
		if err == nil {
			project, err = project.WithServicesEnvironmentResolved(false)
		}
		if err == nil {
			out, err = project.MarshalJSON()
		}
		if err == nil {
			_, err = os.Stdout.Write(out)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "composecheck: %v\n", err)
		os.Exit(1)
	}
}
