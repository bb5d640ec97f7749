package v2vm

import "testing"

func TestParseControl(t *testing.T) {
	f := parseControl([]byte("Package: linux-image-cloud-amd64\nVersion: 6.1.192-3\nDepends: linux-image-6.1.0-57-cloud-amd64 (= 6.1.192-3)\nDescription: Linux for x86-64 cloud\n This metapackage depends on the latest\n\nPackage: other\nVersion: 1\n"))
	if f["Version"] != "6.1.192-3" || f["Depends"] != "linux-image-6.1.0-57-cloud-amd64 (= 6.1.192-3)" {
		t.Fatalf("fields %q", f)
	}
	if f["Description"] != "Linux for x86-64 cloud\nThis metapackage depends on the latest" {
		t.Errorf("continuation: %q", f["Description"])
	}
}

func TestVersionedDep(t *testing.T) {
	for _, tc := range []struct{ name, depends, want string }{
		{"cloud", "linux-image-6.1.0-57-cloud-amd64 (= 6.1.192-3)", "linux-image-6.1.0-57-cloud-amd64"},
		{"several", "kmod, linux-base (>= 4.3~) | foo, linux-image-6.1.0-9-amd64:amd64 (= 6.1.27-1)", "linux-image-6.1.0-9-amd64"},
		{"none", "kmod, linux-base", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := versionedDep(tc.depends, "linux-image-")
			if got != tc.want || (err != nil) != (tc.want == "") {
				t.Fatalf("%q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestMirror(t *testing.T) {
	deb822 := `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
`
	if got := mirrorDeb822([]byte(deb822), "bookworm"); got != "http://deb.debian.org/debian" {
		t.Errorf("deb822: %q", got)
	}
	if got := mirrorDeb822([]byte("Enabled: no\nTypes: deb\nURIs: http://x/debian\nSuites: bookworm\n"), "bookworm"); got != "" {
		t.Errorf("a disabled stanza gave %q", got)
	}
	oneLine := "# deb http://old/debian bookworm main\ndeb-src http://src/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main contrib\n"
	if got := mirrorOneLine([]byte(oneLine), "bookworm"); got != "http://mirror.example/debian" {
		t.Errorf("one-line: %q", got)
	}
	if got := mirrorOneLine([]byte("deb http://x/debian bullseye main\n"), "bookworm"); got != "" {
		t.Errorf("other suite gave %q", got)
	}
}

func TestSafeName(t *testing.T) {
	if got := safeName("1:1.35.0-4+deb12u1+b1"); got != "1_1.35.0-4+deb12u1+b1" {
		t.Errorf("safeName: %q", got)
	}
}
