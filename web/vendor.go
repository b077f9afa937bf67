package web

import (
	"io/fs"
)

// Vendor is the vendored scripts and styles (static/vendor: uPlot, htmx),
// for other pages of the node that draw with them (the public status
// page) without vendoring them again.
func Vendor() fs.FS {
	v, err := fs.Sub(staticFS, "static/vendor")
	if err != nil {
		panic(err) // the directory is embedded: cannot happen
	}
	return v
}
