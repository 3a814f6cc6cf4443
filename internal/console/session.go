package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Sessions: the API token is entered once at /login; the browser then holds
// a random session id in an HttpOnly, SameSite=Strict cookie (Secure, and
// __Host- prefixed, over TLS), mapped here to its expiry and a hash of the
// token it was opened with, so changing or removing http.token ends every
// session. Sessions live in memory: a restart signs everyone out.
//
// CSRF: every form carries HMAC(key, session id), verified in constant
// time; the login form, before there is a session, carries HMAC(key, login
// id) of a short-lived login cookie.
const (
	sessionTTL  = 12 * time.Hour
	maxSessions = 1000
	loginTTL    = 30 * time.Minute
	// Failed logins: a burst of 10, then one every 6 s, for everyone.
	loginFailBurst = 10
	loginFailEvery = 6 * time.Second
)

type session struct {
	id      string
	expires time.Time
	token   [sha256.Size]byte // hash of the token it was opened with
	flash   string            // a message for the next page it sees
}

type sessions struct {
	now      func() time.Time
	key      []byte // HMAC key of the CSRF tokens, new at every start
	failures *rate.Limiter

	mu sync.Mutex
	m  map[string]*session
}

func newSessions(now func() time.Time) (*sessions, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return &sessions{now: now, key: key, m: map[string]*session{},
		failures: rate.NewLimiter(rate.Every(loginFailEvery), loginFailBurst)}, nil
}

// cookieName is the session cookie's name: __Host- over TLS, where the
// browser then refuses it from anything but this host over HTTPS.
func cookieName(r *http.Request, base string) string {
	if r.TLS != nil {
		return "__Host-" + base
	}
	return base
}

const (
	sessionCookie = "nocbridge_session"
	loginCookie   = "nocbridge_login"
)

func randomID() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("console: no randomness: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func tokenHash(token string) [sha256.Size]byte { return sha256.Sum256([]byte(token)) }

// get is r's session, if it is valid: known, not expired, and opened with
// the token configured now.
func (s *sessions) get(r *http.Request, token string) (session, bool) {
	if token == "" {
		return session{}, false
	}
	ck, err := r.Cookie(cookieName(r, sessionCookie))
	if err != nil || ck.Value == "" {
		return session{}, false
	}
	want := tokenHash(token)
	s.mu.Lock()
	defer s.mu.Unlock()
	ses, ok := s.m[ck.Value]
	if !ok || !s.now().Before(ses.expires) || subtle.ConstantTimeCompare(ses.token[:], want[:]) != 1 {
		return session{}, false
	}
	return *ses, true
}

// open starts a session for the token and sets its cookie.
func (s *sessions) open(w http.ResponseWriter, r *http.Request, token string) {
	now := s.now()
	ses := &session{id: randomID(), expires: now.Add(sessionTTL), token: tokenHash(token)}
	s.mu.Lock()
	for id, old := range s.m {
		if !now.Before(old.expires) {
			delete(s.m, id)
		}
	}
	if len(s.m) >= maxSessions { // drop the one closest to its end
		var oldest *session
		for _, old := range s.m {
			if oldest == nil || old.expires.Before(oldest.expires) {
				oldest = old
			}
		}
		delete(s.m, oldest.id)
	}
	s.m[ses.id] = ses
	s.mu.Unlock()
	http.SetCookie(w, cookie(r, sessionCookie, ses.id, sessionTTL))
}

// end forgets r's session and clears its cookie.
func (s *sessions) end(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(cookieName(r, sessionCookie)); err == nil {
		s.mu.Lock()
		delete(s.m, ck.Value)
		s.mu.Unlock()
	}
	http.SetCookie(w, cookie(r, sessionCookie, "", -1))
}

func cookie(r *http.Request, base, value string, ttl time.Duration) *http.Cookie {
	c := &http.Cookie{Name: cookieName(r, base), Value: value, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
	if ttl < 0 {
		c.MaxAge = -1
	} else {
		c.MaxAge = int(ttl / time.Second)
	}
	return c
}

// csrf is the CSRF token of a session's forms.
func (s *sessions) csrf(id string) string { return s.mac("session", id) }

func (s *sessions) mac(kind, id string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// validCSRF compares a form's token with the session's in constant time.
func (s *sessions) validCSRF(ses session, got string) bool {
	return hmac.Equal([]byte(s.csrf(ses.id)), []byte(got))
}

// flash leaves a message for the session's next page.
func (s *sessions) flash(id, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ses, ok := s.m[id]; ok {
		ses.flash = msg
	}
}

// takeFlash returns the session's message once.
func (s *sessions) takeFlash(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ses, ok := s.m[id]
	if !ok {
		return ""
	}
	msg := ses.flash
	ses.flash = ""
	return msg
}

// loginForm is the login page's data.
type loginForm struct {
	CSRF      string
	Next      string
	Error     string
	LoggedOut bool
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.showLogin(w, r, http.StatusOK, "")
}

// showLogin renders the login form with a fresh login cookie and its CSRF
// token.
func (c *Console) showLogin(w http.ResponseWriter, r *http.Request, status int, problem string) {
	f := loginForm{Next: safeNext(r.FormValue("next")), Error: problem, LoggedOut: r.URL.Query().Get("out") == "1"}
	if c.token() != "" {
		id := randomID()
		http.SetCookie(w, cookie(r, loginCookie, id, loginTTL))
		f.CSRF = c.sessions.mac("login", id)
	}
	c.render(w, status, "login", c.page(r, "Log in", "", f))
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	want := c.token()
	if want == "" {
		c.fail(w, r, http.StatusForbidden, "Changes are disabled",
			"The API token (http.token or http.token_file) is not configured, so there is nothing to log in with: the console is read-only.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, http.StatusBadRequest, "Bad form", "The login form could not be read.")
		return
	}
	ck, err := r.Cookie(cookieName(r, loginCookie))
	if err != nil || !hmac.Equal([]byte(c.sessions.mac("login", ck.Value)), []byte(r.PostForm.Get("csrf"))) {
		c.refused.WithLabelValues("login_form").Inc()
		c.log.Warn("console login refused: missing or wrong form token", "remote", r.RemoteAddr)
		c.showLogin(w, r, http.StatusForbidden, "The login form was out of date or came from another site (its security token did not match). Try again; cookies must be enabled.")
		return
	}
	if c.sessions.failures.Tokens() < 1 {
		c.refused.WithLabelValues("too_many_failures").Inc()
		c.log.Warn("console login refused: too many failed logins", "remote", r.RemoteAddr)
		c.showLogin(w, r, http.StatusTooManyRequests, "Too many failed logins: wait a few seconds, then try again.")
		return
	}
	got, wantH := tokenHash(r.PostForm.Get("token")), tokenHash(want)
	if subtle.ConstantTimeCompare(got[:], wantH[:]) != 1 {
		c.sessions.failures.Allow()
		c.refused.WithLabelValues("wrong_token").Inc()
		c.log.Warn("console login refused: wrong token", "remote", r.RemoteAddr)
		c.showLogin(w, r, http.StatusUnauthorized, "That is not the API token (http.token).")
		return
	}
	http.SetCookie(w, cookie(r, loginCookie, "", -1))
	c.sessions.open(w, r, want)
	c.log.Info("console login", "remote", r.RemoteAddr)
	http.Redirect(w, r, safeNext(r.PostForm.Get("next")), http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	if _, ok := c.form(w, r); !ok {
		return
	}
	c.sessions.end(w, r)
	c.log.Info("console logout", "remote", r.RemoteAddr)
	http.Redirect(w, r, "/login?out=1", http.StatusSeeOther)
}

// form admits a form that changes something: the token must be configured,
// the session valid and the form's CSRF token the session's. Otherwise it
// answers 403 with a page that says why, and returns false.
func (c *Console) form(w http.ResponseWriter, r *http.Request) (session, bool) {
	token := c.token()
	if token == "" {
		c.fail(w, r, http.StatusForbidden, "Changes are disabled",
			"Changes from the console need the API token (http.token or http.token_file), which is not configured.")
		return session{}, false
	}
	ses, ok := c.sessions.get(r, token)
	if !ok {
		c.refused.WithLabelValues("no_session").Inc()
		c.render(w, http.StatusForbidden, "message", c.page(r, "Not logged in", "", message{Heading: "Not logged in", Login: true,
			Text: "Changes need a login with the API token, and this browser has no valid session (never logged in, logged out, expired after 12 hours, or nocbridge restarted). Log in, then try again."}))
		return session{}, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, http.StatusBadRequest, "Bad form", "The form could not be read.")
		return session{}, false
	}
	if !c.sessions.validCSRF(ses, r.PostForm.Get("csrf")) {
		c.refused.WithLabelValues("csrf").Inc()
		c.log.Warn("console form refused: missing or wrong CSRF token", "path", r.URL.Path, "remote", r.RemoteAddr)
		c.fail(w, r, http.StatusForbidden, "Form refused",
			"The form's security token is missing or does not belong to your session, so nothing was changed. This happens with a form from before a new login, or one sent from another site. Reload the page and try again.")
		return session{}, false
	}
	return ses, true
}

// safeNext is a local path to go to after logging in; anything else
// (another host, a scheme, //host) becomes /.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.Path == "/login" {
		return "/"
	}
	return next
}
