package alerts

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
	"time"
)

// Token login. With Config.Token set, the analyst API and the stream need
// either "Authorization: Bearer TOKEN" (tools) or the session cookie that
// POST /api/v1/login sets (the dashboard). The cookie holds an HMAC of the
// token, not the token; it is HttpOnly and SameSite=Strict, and writes
// must be application/json, so other sites can neither read nor forge
// requests with it.

const sessionCookie = "fraudstream_session"

// sessionTTL is how long a dashboard login lasts.
const sessionTTL = 12 * time.Hour

type auth struct {
	token   string // empty: no authentication
	session string // the cookie value that proves a login
}

func newAuth(token string) *auth {
	if token == "" {
		return &auth{}
	}
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("fraudstream alerts dashboard session v1"))
	return &auth{token: token, session: hex.EncodeToString(m.Sum(nil))}
}

func (a *auth) enabled() bool { return a.token != "" }

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// ok reports whether r carries the token or a session cookie.
func (a *auth) ok(r *http.Request) bool {
	if !a.enabled() {
		return true
	}
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, _ := strings.Cut(h, " ")
		return strings.EqualFold(scheme, "Bearer") && equal(strings.TrimSpace(tok), a.token)
	}
	c, err := r.Cookie(sessionCookie)
	return err == nil && equal(c.Value, a.session)
}

// require is middleware answering 401 to requests without credentials.
func (a *auth) require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.ok(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="fraudstream alerts"`)
			writeProblem(w, r, http.StatusUnauthorized, "log in with the dashboard token (POST /api/v1/login) or send Authorization: Bearer TOKEN")
			return
		}
		next.ServeHTTP(w, r)
	})
}

type loginRequest struct {
	Token string `json:"token"`
}

// authInfo is the body of GET /api/v1/auth: whether the dashboard must
// show its login form.
type authInfo struct {
	Required      bool `json:"required"`
	Authenticated bool `json:"authenticated"`
}

func (s *Service) authStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, authInfo{Required: s.auth.enabled(), Authenticated: s.auth.ok(r)})
}

// login serves POST /api/v1/login {"token": …}: a right token sets the
// session cookie.
func (s *Service) login(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if !decodeJSONBody(w, r, &req) {
		return
	}
	if !s.auth.enabled() {
		writeJSON(w, http.StatusOK, authInfo{Required: false, Authenticated: true})
		return
	}
	if !equal(req.Token, s.auth.token) {
		s.log.Warn("dashboard login refused", "remote", r.RemoteAddr)
		writeProblem(w, r, http.StatusUnauthorized, "wrong token")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: s.auth.session, Path: "/",
		MaxAge: int(sessionTTL.Seconds()), HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https",
	})
	writeJSON(w, http.StatusOK, authInfo{Required: true, Authenticated: true})
}

// logout serves POST /api/v1/logout.
func (s *Service) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}
