package pairrecord

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Permissions of iosmux's own store: the directory and files are the owner's only.
const (
	DirMode  fs.FileMode = 0o700
	FileMode fs.FileMode = 0o600
)

// maxFileSize bounds a pair record file read from disk (real ones are ~6 KiB).
const maxFileSize = 1 << 20

// ValidUDID reports whether udid can name a record file: non-empty, at most 64 bytes of
// letters, digits and '-' (no path separators, no dots).
func ValidUDID(udid string) bool {
	if udid == "" || len(udid) > 64 {
		return false
	}
	for _, c := range udid {
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-':
		default:
			return false
		}
	}
	return true
}

// udidForms returns udid and its other dash form: Linux usbmuxd may report A12+ UDIDs without
// the dash after the 8-digit chip id (lockdown.md §2.4).
func udidForms(udid string) []string {
	forms := []string{udid}
	switch {
	case len(udid) == 25 && udid[8] == '-' && strings.Count(udid, "-") == 1:
		forms = append(forms, udid[:8]+udid[9:])
	case len(udid) == 24 && !strings.Contains(udid, "-"):
		forms = append(forms, udid[:8]+"-"+udid[8:])
	}
	return forms
}

// Source is somewhere pair records can be loaded from.
type Source interface {
	// Load returns the device's record, or an error wrapping ErrNotFound when there is none.
	Load(ctx context.Context, udid string) (*Record, error)
	// String names the source for logs and errors.
	String() string
}

// DirSource reads <Dir>/<UDID>.plist files (XML or binary plist): libimobiledevice's
// /var/lib/lockdown, pymobiledevice3's ~/.pymobiledevice3, or any directory given.
type DirSource struct {
	Dir  string
	Name string // for String; "" uses Dir
}

// Load implements Source. Both dash forms of the UDID are tried.
func (s DirSource) Load(ctx context.Context, udid string) (*Record, error) {
	if !ValidUDID(udid) {
		return nil, fmt.Errorf("pairrecord: %s: invalid UDID %q", s, udid)
	}
	for _, u := range udidForms(udid) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		path := filepath.Join(s.Dir, u+".plist")
		rec, err := LoadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("pairrecord: %s: %w", s, err)
		}
		return rec, nil
	}
	return nil, fmt.Errorf("pairrecord: %s: %s: %w", s, udid, ErrNotFound)
}

func (s DirSource) String() string {
	if s.Name != "" {
		return s.Name + " (" + s.Dir + ")"
	}
	return s.Dir
}

// LoadFile reads and parses one pair record file.
func LoadFile(path string) (*Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > maxFileSize {
		return nil, fmt.Errorf("%w: %s: not a regular file below %d bytes", ErrInvalid, path, maxFileSize)
	}
	data := make([]byte, st.Size())
	if _, err := f.ReadAt(data, 0); err != nil && st.Size() > 0 {
		return nil, err
	}
	rec, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rec, nil
}

// SystemDir is where usbmuxd (libimobiledevice) keeps pair records: /var/lib/lockdown on Linux,
// /var/db/lockdown on macOS (pair-records.md §2.1).
func SystemDir() string {
	if runtime.GOOS == "darwin" {
		return "/var/db/lockdown"
	}
	return "/var/lib/lockdown"
}

// Libimobiledevice is the source reading usbmuxd's own directory directly (SystemDir). It is
// usually readable by root only; prefer asking usbmuxd (lockdown.Mux.ReadPairRecord).
func Libimobiledevice() Source { return DirSource{Dir: SystemDir(), Name: "libimobiledevice"} }

// Pymobiledevice3Dir is pymobiledevice3's cache, ~/.pymobiledevice3, where ~ is the home of
// $SUDO_USER when running under sudo (pair-records.md §2.1).
func Pymobiledevice3Dir() (string, error) {
	home, err := userHome()
	if err != nil {
		return "", fmt.Errorf("pairrecord: pymobiledevice3 directory: %w", err)
	}
	return filepath.Join(home, ".pymobiledevice3"), nil
}

// Pymobiledevice3 is the source reading ~/.pymobiledevice3/<UDID>.plist. It is nil when no
// home directory can be found.
func Pymobiledevice3() Source {
	dir, err := Pymobiledevice3Dir()
	if err != nil {
		return nil
	}
	return DirSource{Dir: dir, Name: "pymobiledevice3"}
}

// ReadSystemBUID reads SystemBUID from usbmuxd's SystemConfiguration.plist in dir (SystemDir),
// for hosts where the directory is readable but usbmuxd's socket is not.
func ReadSystemBUID(dir string) (string, error) {
	rec, err := LoadFile(filepath.Join(dir, "SystemConfiguration.plist"))
	if err != nil {
		return "", fmt.Errorf("pairrecord: SystemConfiguration.plist: %w", err)
	}
	if rec.SystemBUID == "" {
		return "", fmt.Errorf("pairrecord: SystemConfiguration.plist: %w: no SystemBUID", ErrInvalid)
	}
	return rec.SystemBUID, nil
}

// UsbmuxdReader is the part of a usbmuxd client Usbmuxd needs (lockdown.Mux implements it).
// A missing record must be reported as an error wrapping ErrNotFound.
type UsbmuxdReader interface {
	ReadPairRecordData(ctx context.Context, udid string) ([]byte, error)
}

type usbmuxdSource struct {
	r    UsbmuxdReader
	name string
}

// Usbmuxd is the source asking a usbmuxd (local, or remote over TCP) with ReadPairRecord.
func Usbmuxd(r UsbmuxdReader, name string) Source {
	if name == "" {
		name = "usbmuxd"
	}
	return usbmuxdSource{r: r, name: name}
}

func (s usbmuxdSource) Load(ctx context.Context, udid string) (*Record, error) {
	data, err := s.r.ReadPairRecordData(ctx, udid)
	if err != nil {
		return nil, fmt.Errorf("pairrecord: %s: %w", s.name, err)
	}
	rec, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("pairrecord: %s: %w", s.name, err)
	}
	return rec, nil
}

func (s usbmuxdSource) String() string { return s.name }

// Find returns the first record found in sources, in order, and where it came from. Nil
// sources are skipped. A source failing for another reason than ErrNotFound (permission
// denied, unreachable usbmuxd, broken file) does not stop the search; if no source has the
// record the error wraps ErrNotFound and names those failures.
func Find(ctx context.Context, udid string, sources ...Source) (*Record, Source, error) {
	var failures []string
	for _, s := range sources {
		if s == nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		rec, err := s.Load(ctx, udid)
		switch {
		case err == nil:
			return rec, s, nil
		case errors.Is(err, ErrNotFound):
		default:
			failures = append(failures, err.Error())
		}
	}
	if len(failures) > 0 {
		return nil, nil, fmt.Errorf("pairrecord: %s: %w (also: %s)", udid, ErrNotFound, strings.Join(failures, "; "))
	}
	return nil, nil, fmt.Errorf("pairrecord: %s: %w", udid, ErrNotFound)
}

// Store is iosmux's own pair record directory: mode 0700, one <UDID>.plist per device, mode
// 0600, replaced atomically.
type Store struct {
	dir string
}

// DefaultStoreDir is iosmux's store: /var/lib/iosmux/lockdown when running as root (the daemon),
// else <user config dir>/iosmux/lockdown.
func DefaultStoreDir() (string, error) {
	if os.Geteuid() == 0 && runtime.GOOS != "windows" {
		return "/var/lib/iosmux/lockdown", nil
	}
	cfg, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("pairrecord: store directory: %w", err)
	}
	return filepath.Join(cfg, "iosmux", "lockdown"), nil
}

// OpenStore opens (creating it if needed) the store at dir and makes sure only its owner can
// read it: an existing directory with wider permissions is tightened to 0700.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return nil, fmt.Errorf("pairrecord: store: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("pairrecord: store: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("pairrecord: store: %s is not a directory", dir)
	}
	if st.Mode().Perm() != DirMode {
		if err := os.Chmod(dir, DirMode); err != nil {
			return nil, fmt.Errorf("pairrecord: store: %w", err)
		}
	}
	return &Store{dir: dir}, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) String() string { return "iosmux store (" + s.dir + ")" }

func (s *Store) path(udid string) (string, error) {
	if !ValidUDID(udid) {
		return "", fmt.Errorf("pairrecord: store: invalid UDID %q", udid)
	}
	return filepath.Join(s.dir, udid+".plist"), nil
}

// Load implements Source.
func (s *Store) Load(ctx context.Context, udid string) (*Record, error) {
	return DirSource{Dir: s.dir, Name: "iosmux store"}.Load(ctx, udid)
}

// Save writes rec as <UDID>.plist (XML), atomically.
func (s *Store) Save(udid string, rec *Record) error {
	path, err := s.path(udid)
	if err != nil {
		return err
	}
	data, err := rec.Marshal()
	if err != nil {
		return err
	}
	if err := s.writeFile(path, data); err != nil {
		return fmt.Errorf("pairrecord: store: save %s: %w", udid, err)
	}
	return nil
}

// writeFile replaces path in the store atomically: a 0600 temporary file in the same
// directory, synced, then renamed over the old one.
func (s *Store) writeFile(path string, data []byte) error {
	f, err := os.CreateTemp(s.dir, "."+filepath.Base(path)+".*.tmp") // CreateTemp uses mode 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Chmod(FileMode); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(s.dir); err == nil {
		d.Sync() // make the rename durable; best effort
		d.Close()
	}
	return nil
}

// HostUUID is the RSD host Handshake UUID iosmux presents to the device: one per device,
// made at random (version 4) on first use and kept in <UDID>.host-uuid.
func (s *Store) HostUUID(udid string) ([16]byte, error) {
	var u [16]byte
	if !ValidUDID(udid) {
		return u, fmt.Errorf("pairrecord: store: invalid UDID %q", udid)
	}
	path := filepath.Join(s.dir, udid+".host-uuid")
	if b, err := os.ReadFile(path); err == nil {
		if n, err := hex.Decode(u[:], bytes.ReplaceAll(bytes.TrimSpace(b), []byte("-"), nil)); err == nil && n == 16 {
			return u, nil
		}
		return u, fmt.Errorf("pairrecord: store: %s is not a UUID (fix or delete it)", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return u, fmt.Errorf("pairrecord: store: host UUID: %w", err)
	}
	if _, err := rand.Read(u[:]); err != nil {
		return u, err
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	text := fmt.Sprintf("%X-%X-%X-%X-%X\n", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	if err := s.writeFile(path, []byte(text)); err != nil {
		return u, fmt.Errorf("pairrecord: store: host UUID: %w", err)
	}
	return u, nil
}

// Delete removes the device's record; a missing record is not an error.
func (s *Store) Delete(udid string) error {
	path, err := s.path(udid)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pairrecord: store: delete %s: %w", udid, err)
	}
	return nil
}

// List returns the UDIDs that have a record, sorted.
func (s *Store) List() ([]string, error) { return s.list("", 0) }

// list returns the sorted UDIDs of the regular files named prefix+UDID+".plist", at most limit
// of them (0: all).
func (s *Store) list(prefix string, limit int) ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("pairrecord: store: %w", err)
	}
	var out []string
	for _, e := range ents {
		name, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		udid, ok := strings.CutSuffix(name, ".plist")
		if ok && e.Type().IsRegular() && ValidUDID(udid) {
			out = append(out, udid)
			if len(out) == limit {
				break
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// userHome is the invoking user's home: $SUDO_USER's when running under sudo as root
// (pymobiledevice3's get_homedir), else the current user's.
func userHome() (string, error) {
	if su := os.Getenv("SUDO_USER"); su != "" && os.Geteuid() == 0 {
		if u, err := user.Lookup(su); err == nil && u.HomeDir != "" {
			return u.HomeDir, nil
		}
	}
	return os.UserHomeDir()
}

// MoveAside renames the device's record to <UDID>.plist.refused-<UTC time>, so it is kept but
// no longer loaded (the device refused it). It returns the new path, or "" when there was no
// record.
func (s *Store) MoveAside(udid string) (string, error) {
	if _, err := s.path(udid); err != nil {
		return "", err
	}
	stamp := time.Now().UTC().Format("20060102T150405.000000000Z")
	moved := ""
	for _, u := range udidForms(udid) {
		from := filepath.Join(s.dir, u+".plist")
		to := from + ".refused-" + stamp
		if err := os.Rename(from, to); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return moved, fmt.Errorf("pairrecord: store: move aside %s: %w", u, err)
		}
		moved = to
	}
	return moved, nil
}
