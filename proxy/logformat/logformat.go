// Package logformat parses an access log template of nginx log_format
// variables ("$remote_addr - [$time_local] \"$request\" $status") into
// parts, once, so that the proxy writes each line from the parts
// without parsing or allocating. It knows the variables' names, not
// their values: config asks it whether a template is valid, and proxy
// writes the values. The standard library only.
package logformat

import (
	"fmt"
	"strings"
)

// Var is one variable of a template; None marks a literal part.
type Var uint8

// The variables: nginx's, with nginx's meaning, and Session.
const (
	None                 Var = iota
	RemoteAddr               // $remote_addr: the client's address (after real_ip_from)
	TimeLocal                // $time_local: 02/Jan/2006:15:04:05 -0700, the request's start
	Request                  // $request: "METHOD target PROTOCOL"
	Status                   // $status
	BodyBytesSent            // $body_bytes_sent: the response body's bytes
	HTTPReferer              // $http_referer
	HTTPUserAgent            // $http_user_agent
	RequestTime              // $request_time: seconds with milliseconds, body included
	UpstreamAddr             // $upstream_addr: the backend's host:port
	UpstreamResponseTime     // $upstream_response_time: seconds with milliseconds
	RequestID                // $request_id: the X-Request-Id sent to the backend
	Session                  // $session: the session ID's first 6 characters
)

// names are the variables' names, without "$", in Var order.
var names = [...]string{
	RemoteAddr:           "remote_addr",
	TimeLocal:            "time_local",
	Request:              "request",
	Status:               "status",
	BodyBytesSent:        "body_bytes_sent",
	HTTPReferer:          "http_referer",
	HTTPUserAgent:        "http_user_agent",
	RequestTime:          "request_time",
	UpstreamAddr:         "upstream_addr",
	UpstreamResponseTime: "upstream_response_time",
	RequestID:            "request_id",
	Session:              "session",
}

// String is the variable's name with its "$".
func (v Var) String() string {
	if v == None || int(v) >= len(names) {
		return "literal"
	}
	return "$" + names[v]
}

// Names lists the variables a template may use, with their "$".
func Names() []string {
	var s []string
	for v := RemoteAddr; int(v) < len(names); v++ {
		s = append(s, v.String())
	}
	return s
}

// Part is a literal text or one variable.
type Part struct {
	Var  Var    // None: Text is written as it is
	Text string // the literal, when Var is None
}

// IsTemplate reports whether format is a template rather than the name
// of a built-in format (text, json, combined, off): one with a "$".
func IsTemplate(format string) bool { return strings.Contains(format, "$") }

// Parse splits a template into parts. A variable is "$name" (the name
// runs over letters, digits and "_", as nginx's) or "${name}" when text
// follows it at once. An unknown name, a "$" with no name after it or an
// unclosed "${" is an error naming it; a template with no variable at all
// is one too (it would log the same line for every request).
func Parse(tmpl string) ([]Part, error) {
	var parts []Part
	lit := 0 // start of the literal being read
	vars := 0
	for i := 0; i < len(tmpl); {
		if tmpl[i] != '$' {
			i++
			continue
		}
		start := i
		i++
		var name string
		if i < len(tmpl) && tmpl[i] == '{' {
			end := strings.IndexByte(tmpl[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("unclosed \"${\" at offset %d", start)
			}
			name = tmpl[i+1 : i+end]
			i += end + 1
		} else {
			j := i
			for j < len(tmpl) && nameByte(tmpl[j]) {
				j++
			}
			name = tmpl[i:j]
			i = j
		}
		if name == "" {
			return nil, fmt.Errorf("\"$\" without a variable name at offset %d", start)
		}
		v := lookup(name)
		if v == None {
			return nil, fmt.Errorf("unknown variable $%s (known: %s)", name, strings.Join(Names(), " "))
		}
		if start > lit {
			parts = append(parts, Part{Text: tmpl[lit:start]})
		}
		parts = append(parts, Part{Var: v})
		vars++
		lit = i
	}
	if lit < len(tmpl) {
		parts = append(parts, Part{Text: tmpl[lit:]})
	}
	if vars == 0 {
		return nil, fmt.Errorf("no variable in the template (known: %s)", strings.Join(Names(), " "))
	}
	return parts, nil
}

func nameByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func lookup(name string) Var {
	for v, n := range names {
		if n != "" && n == name {
			return Var(v)
		}
	}
	return None
}
