package privdir

import "os"

// Windows has no O_NOFOLLOW or FIFOs of this kind, nor uids: a file is
// taken as the daemon's own (Geteuid is -1 there).
const (
	oNoFollow = 0
	oNonBlock = 0
)

func setBlocking(*os.File) error { return nil }

func statOf(fi os.FileInfo) fileStat {
	return fileStat{dir: fi.IsDir(), regular: fi.Mode().IsRegular(), sticky: true, perm: 0, nlink: 1, uid: os.Geteuid()}
}
