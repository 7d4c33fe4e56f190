// eggo-nornir testbed only (design-notes §7): the runc of an emulated arm64 machine.
//
// Why: arm64 runc cannot run under qemu-user ("nsexec: could not ensure we are a cloned
// binary"), so the machine runs the native amd64 runc. The container's arm64 programs
// still run through the x86-64 qemu, which needs arch_prctl; the arm64 RuntimeDefault
// seccomp profile does not allow it (qemu fails with "cannot set %fs base address for
// thread-local storage"). On `create` and `run` this wrapper adds an arch_prctl allow
// rule to the bundle's config.json, then execs the real runc with the same arguments.
// Real arm64 hosts never get it: it is written into testbed machines only.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

const realRunc = "/usr/local/lib/eggo-testbed/amd64/runc"

func bundleDir(args []string) (string, bool) {
	cmd, bundle := "", "."
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--bundle" || a == "-b":
			if i+1 < len(args) {
				bundle = args[i+1]
				i++
			}
		case strings.HasPrefix(a, "--bundle="):
			bundle = strings.TrimPrefix(a, "--bundle=")
		case cmd == "" && !strings.HasPrefix(a, "-"):
			if i > 0 && takesValue(args[i-1]) {
				continue
			}
			cmd = a
		}
	}
	return bundle, cmd == "create" || cmd == "run"
}

// global flags of runc that take a separate value
func takesValue(flag string) bool {
	switch flag {
	case "--root", "--log", "--log-format", "--criu", "--rootless":
		return true
	}
	return false
}

func allowArchPrctl(path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return err
	}
	linux, _ := doc["linux"].(map[string]any)
	seccomp, _ := linux["seccomp"].(map[string]any)
	if seccomp == nil {
		return nil
	}
	syscalls, _ := seccomp["syscalls"].([]any)
	for _, s := range syscalls {
		rule, _ := s.(map[string]any)
		names, _ := rule["names"].([]any)
		if len(names) == 1 && names[0] == "arch_prctl" && rule["action"] == "SCMP_ACT_ALLOW" {
			return nil
		}
	}
	seccomp["syscalls"] = append(syscalls, map[string]any{
		"names": []string{"arch_prctl"}, "action": "SCMP_ACT_ALLOW",
	})
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o600)
}

func main() {
	if bundle, ok := bundleDir(os.Args[1:]); ok {
		if err := allowArchPrctl(filepath.Join(bundle, "config.json")); err != nil {
			fmt.Fprintf(os.Stderr, "eggo-testbed runc wrapper: %v\n", err)
			os.Exit(1)
		}
	}
	args := append([]string{realRunc}, os.Args[1:]...)
	if err := syscall.Exec(realRunc, args, os.Environ()); err != nil {
		fmt.Fprintf(os.Stderr, "eggo-testbed runc wrapper: exec %s: %v\n", realRunc, err)
		os.Exit(1)
	}
}
