package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
)

// Paging (every list endpoint that pages): `limit` and `cursor` query
// parameters; the answer is the page's JSON array, and a next page is
// announced in `Link: <…>; rel="next"` and `X-Next-Cursor`. Without
// `limit` an endpoint answers what it always did (all of it, or its
// default page).

// maxLimit bounds a page: a larger limit is taken as this.
const maxLimit = 1000

// pageRequest is a request's limit (0: none given) and cursor.
type pageRequest struct {
	limit  int
	cursor string
}

// readPage reads limit and cursor; a limit that is not a positive integer
// is answered 400, and ok is false.
func readPage(w http.ResponseWriter, r *http.Request) (p pageRequest, ok bool) {
	q := r.URL.Query()
	p.cursor = q.Get("cursor")
	if !q.Has("limit") {
		return p, true
	}
	v := q.Get("limit")
	n, err := strconv.Atoi(v)
	switch {
	case err != nil && len(v) > 0 && v[0] != '-' && isDigits(v):
		n = maxLimit // larger than an int: the largest page
	case err != nil || n <= 0:
		if len(v) > 32 {
			v = v[:32] + "…"
		}
		writeError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want a positive integer (at most %d are given)", v, maxLimit))
		return p, false
	}
	p.limit = min(n, maxLimit)
	return p, true
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// writePage answers a page as a JSON array; next, when not empty, is the
// next page's cursor, announced in Link (this request's URL with the
// cursor replaced) and X-Next-Cursor.
func writePage(w http.ResponseWriter, r *http.Request, items any, next string) {
	if next != "" {
		u := *r.URL
		q := u.Query()
		q.Set("cursor", next)
		u.RawQuery = q.Encode()
		w.Header().Set("Link", "<"+u.RequestURI()+`>; rel="next"`)
		w.Header().Set("X-Next-Cursor", next)
	}
	writeJSON(w, items)
}
