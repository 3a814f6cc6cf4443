package httpapi

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
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

// pageByKey pages a list held in memory (devices, alerts, silences) by a
// key unique per item: sorted by it, the page starts after the cursor's key,
// so a page neither skips nor repeats an item as others come and go. The
// cursor is the last key of the page before, base64url-encoded (device
// names hold characters a query would need escaped). Without limit or
// cursor the list is answered whole, in its own order, as it always was.
func pageByKey[T any](w http.ResponseWriter, r *http.Request, items []T, key func(T) string) {
	p, ok := readPage(w, r)
	if !ok {
		return
	}
	if p.limit == 0 && p.cursor == "" {
		writeJSON(w, items)
		return
	}
	if p.limit == 0 {
		p.limit = maxLimit
	}
	slices.SortFunc(items, func(a, b T) int { return strings.Compare(key(a), key(b)) })
	start := 0
	if p.cursor != "" {
		after, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(p.cursor, "k"))
		if err != nil || !strings.HasPrefix(p.cursor, "k") {
			c := p.cursor
			if len(c) > 32 {
				c = c[:32] + "…"
			}
			writeError(w, http.StatusBadRequest, fmt.Sprintf("cursor %q is not one a page of this list gave", c))
			return
		}
		start, _ = slices.BinarySearchFunc(items, string(after), func(it T, k string) int {
			if c := strings.Compare(key(it), k); c != 0 {
				return c
			}
			return -1 // the cursor's own item belongs to the page before
		})
	}
	end := min(start+p.limit, len(items))
	page := items[start:end]
	next := ""
	if end < len(items) && len(page) > 0 {
		next = "k" + base64.RawURLEncoding.EncodeToString([]byte(key(page[len(page)-1])))
	}
	if page == nil {
		page = []T{}
	}
	writePage(w, r, page, next)
}
