// Package packaging holds what builds the Debian package (deb/build.sh,
// run by make deb) and its test.
package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDeb builds the package with `make deb`'s script, checks its file
// list and modes (dpkg-deb -c), its conffiles, installs it into a
// scratch root (dpkg -x) and runs the installed binary there: `version`
// prints the package's version, and `check` passes on the shipped
// config, run inside the scratch root (chroot, or a user namespace when
// not root) so that its access_log.path resolves as on a real system.
func TestDeb(t *testing.T) {
	for _, tool := range []string{"dpkg-deb", "dpkg", "chroot"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing (Debian's dpkg and coreutils): %v", tool, err)
		}
	}
	// The tree's version, asked before the build as the build asks it.
	vs, err := exec.Command("sh", "version.sh").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(string(vs))
	out := t.TempDir()
	b, err := exec.Command("sh", "deb/build.sh", out).CombinedOutput()
	if err != nil {
		t.Fatalf("deb/build.sh: %v\n%s", err, b)
	}
	deb := strings.TrimSpace(string(b))
	m := regexp.MustCompile(`/sessionproxy_([0-9][A-Za-z0-9.+~]*)_([a-z0-9]+)\.deb$`).FindStringSubmatch(deb)
	if m == nil {
		t.Fatalf("package name %q is not sessionproxy_<version>_<arch>.deb", deb)
	}
	debVersion := m[1]

	list, err := exec.Command("dpkg-deb", "-c", deb).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb -c: %v\n%s", err, list)
	}
	modes := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(list)), "\n") {
		f := strings.Fields(l)
		if f[1] != "root/root" {
			t.Errorf("%s is owned by %s, want root/root", f[5], f[1])
		}
		modes[strings.TrimPrefix(f[5], ".")] = f[0]
	}
	for path, mode := range map[string]string{
		"/usr/bin/sessionproxy":                    "-rwxr-xr-x",
		"/etc/sessionproxy/sessionproxy.yaml":      "-rw-r--r--",
		"/etc/logrotate.d/sessionproxy":            "-rw-r--r--",
		"/lib/systemd/system/sessionproxy.service": "-rw-r--r--",
		"/usr/share/doc/sessionproxy/CHANGELOG.md": "-rw-r--r--",
		"/var/log/sessionproxy/":                   "drwxr-xr-x",
		"/":                                        "drwxr-xr-x",
	} {
		if modes[path] != mode {
			t.Errorf("%s: mode %q, want %q", path, modes[path], mode)
		}
	}
	conffiles, err := exec.Command("dpkg-deb", "-I", deb, "conffiles").CombinedOutput()
	if err != nil || !strings.Contains(string(conffiles), "/etc/sessionproxy/sessionproxy.yaml\n") {
		t.Errorf("conffiles: %v %q", err, conffiles)
	}

	root := t.TempDir()
	if b, err := exec.Command("dpkg", "-x", deb, root).CombinedOutput(); err != nil {
		t.Fatalf("dpkg -x: %v\n%s", err, b)
	}
	bin := filepath.Join(root, "usr/bin/sessionproxy")
	v, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("version: %v %s", err, v)
	}
	// The binary's version is version.sh's, git describe's, and the
	// package's is the same without its "v".
	if got := strings.TrimSpace(string(v)); got != "sessionproxy "+want {
		t.Errorf("version prints %q, want %q", got, "sessionproxy "+want)
	}
	if !strings.HasPrefix(debVersion, strings.SplitN(strings.TrimPrefix(want, "v"), "-", 2)[0]) {
		t.Errorf("package version %s, binary %s", debVersion, want)
	}

	unit, _ := os.ReadFile(filepath.Join(root, "lib/systemd/system/sessionproxy.service"))
	for _, w := range []string{"ExecStart=/usr/bin/sessionproxy run -config /etc/sessionproxy/sessionproxy.yaml",
		"StateDirectory=sessionproxy", "LogsDirectory=sessionproxy", "ExecReload=/bin/kill -HUP $MAINPID"} {
		if !strings.Contains(string(unit), w+"\n") {
			t.Errorf("the unit lacks %q", w)
		}
	}
	rotate, _ := os.ReadFile(filepath.Join(root, "etc/logrotate.d/sessionproxy"))
	if !strings.Contains(string(rotate), "/var/log/sessionproxy/*.log") || !strings.Contains(string(rotate), "USR1") {
		t.Errorf("the logrotate snippet does not rotate the access log with USR1:\n%s", rotate)
	}

	if !strings.Contains(string(unit), "User=sessionproxy\n") || strings.Contains(string(unit), "DynamicUser") {
		t.Errorf("the unit does not run as the package's user sessionproxy:\n%s", unit)
	}
	post, _ := exec.Command("dpkg-deb", "-I", deb, "postinst").CombinedOutput()
	if !strings.Contains(string(post), "useradd --system") {
		t.Errorf("postinst creates no system user:\n%s", post)
	}
	args := []string{root, "/usr/bin/sessionproxy", "check", "-config", "/etc/sessionproxy/sessionproxy.yaml"}
	cmd := exec.Command("chroot", args...)
	if os.Getuid() != 0 {
		cmd = exec.Command("unshare", append([]string{"-r", "chroot"}, args...)...)
	}
	if b, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(b), "configuration is valid") {
		t.Fatalf("check of the shipped config in the scratch root: %v\n%s", err, b)
	}
	// The shipped config names a log file that check tests: without the
	// directory the package ships, check fails.
	os.Remove(filepath.Join(root, "var/log/sessionproxy"))
	if b, err := exec.Command(cmd.Args[0], cmd.Args[1:]...).CombinedOutput(); err == nil {
		t.Fatalf("check passed without /var/log/sessionproxy:\n%s", b)
	}
}
