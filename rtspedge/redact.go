package rtspedge

import (
	"net/url"
	"strings"
)

// redactURL returns u without its user info, for logs and errors. A string
// that does not parse as a URL is replaced as a whole: it might hold a secret.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "<unparsable URL>"
	}
	p.User = nil
	return p.String()
}

// redactedError hides secrets (user info of an origin URL) that a library may
// have put into an error string, and keeps the chain for errors.Is/As.
type redactedError struct {
	err     error
	secrets []string
}

func (e *redactedError) Error() string {
	s := e.err.Error()
	for _, sec := range e.secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "<redacted>")
		}
	}
	return s
}

func (e *redactedError) Unwrap() error { return e.err }

// secretsOf lists the strings of u that must never appear in output: the raw
// and decoded user info, user name and password.
func secretsOf(u *url.URL) []string {
	if u.User == nil {
		return nil
	}
	var out []string
	raw := u.User.String()
	out = append(out, raw+"@", raw)
	// Bare names and passwords only when long enough not to blank out
	// unrelated words of a message.
	if pw, ok := u.User.Password(); ok && len(pw) >= 3 {
		out = append(out, pw, url.QueryEscape(pw), url.PathEscape(pw))
	}
	if n := u.User.Username(); len(n) >= 3 {
		out = append(out, n)
	}
	return out
}

// redact wraps err so that none of secrets appears in its message.
func redact(err error, secrets []string) error {
	if err == nil || len(secrets) == 0 {
		return err
	}
	return &redactedError{err: err, secrets: secrets}
}
