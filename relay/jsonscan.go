package relay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// scanner reads JSON from a byte slice without building a tree: the event
// decoder walks an SQS event with it in one pass. Every method checks its
// bounds; malformed input is an error, never a panic.
type scanner struct {
	buf []byte
	pos int
	// arena holds strings that needed unescaping and decoded Binary
	// values; it only grows, so slices of it stay valid and unchanged.
	arena []byte
}

var errEOF = errors.New("unexpected end of JSON")

func (s *scanner) syntax(what string) error {
	if s.pos >= len(s.buf) {
		return fmt.Errorf("invalid JSON at offset %d: %w", s.pos, errEOF)
	}
	return fmt.Errorf("invalid JSON at offset %d: %s, found %q", s.pos, what, s.buf[s.pos])
}

func (s *scanner) ws() {
	for s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.pos >= len(s.buf) {
		return 0
	}
	return s.buf[s.pos]
}

func (s *scanner) expect(c byte) error {
	if s.peek() != c {
		return s.syntax(fmt.Sprintf("expected %q", c))
	}
	s.pos++
	return nil
}

// kind names the JSON type of the next value, for type errors.
func (s *scanner) kind() string {
	switch s.peek() {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	default:
		return "a number"
	}
}

// object calls member for each key of the object at the cursor; member
// must consume the value.
func (s *scanner) object(member func(key []byte) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for {
		if s.peek() != '"' {
			return s.syntax("expected a key")
		}
		key, err := s.str()
		if err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := member(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.syntax("expected ',' or '}'")
		}
	}
}

// array calls elem for each element of the array at the cursor; elem must
// consume it.
func (s *scanner) array(elem func() error) error {
	if err := s.expect('['); err != nil {
		return err
	}
	if s.peek() == ']' {
		s.pos++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return s.syntax("expected ',' or ']'")
		}
	}
}

// null consumes a null if one is next.
func (s *scanner) null() bool {
	if s.peek() == 'n' && s.literal("null") == nil {
		return true
	}
	return false
}

func (s *scanner) literal(lit string) error {
	if len(s.buf)-s.pos < len(lit) || string(s.buf[s.pos:s.pos+len(lit)]) != lit {
		return s.syntax("expected " + lit)
	}
	s.pos += len(lit)
	return nil
}

// str reads the string at the cursor. Without escapes it is a slice of the
// input; with escapes it is unescaped into the arena.
func (s *scanner) str() ([]byte, error) {
	if err := s.expect('"'); err != nil {
		return nil, err
	}
	start := s.pos
	// Eight bytes at a time past the plain ones: bodies are most of an event.
	for s.pos+8 <= len(s.buf) && !special(binary.LittleEndian.Uint64(s.buf[s.pos:])) {
		s.pos += 8
	}
	for s.pos < len(s.buf) {
		c := s.buf[s.pos]
		switch {
		case c == '"':
			s.pos++
			return s.buf[start : s.pos-1 : s.pos-1], nil
		case c == '\\':
			return s.unescape(start)
		case c < 0x20:
			return nil, s.syntax("control character in string")
		}
		s.pos++
	}
	return nil, s.syntax("unterminated string")
}

// special reports whether any of the eight bytes in x may be a quote, a
// backslash or a control character (false positives allowed, no false
// negatives): the SWAR "has zero byte" test on x^'"', x^'\\' and x-0x20.
func special(x uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	q := x ^ (lo * '"')
	b := x ^ (lo * '\\')
	return ((x-lo*0x20)&^x|(q-lo)&^q|(b-lo)&^b)&hi != 0
}

func (s *scanner) unescape(start int) ([]byte, error) {
	out := len(s.arena)
	s.arena = append(s.arena, s.buf[start:s.pos]...)
	for s.pos < len(s.buf) {
		c := s.buf[s.pos]
		switch {
		case c == '"':
			s.pos++
			return s.arena[out:len(s.arena):len(s.arena)], nil
		case c < 0x20:
			return nil, s.syntax("control character in string")
		case c != '\\':
			s.arena = append(s.arena, c)
			s.pos++
			continue
		}
		if s.pos+1 >= len(s.buf) {
			break
		}
		esc := s.buf[s.pos+1]
		s.pos += 2
		switch esc {
		case '"', '\\', '/':
			s.arena = append(s.arena, esc)
		case 'b':
			s.arena = append(s.arena, '\b')
		case 'f':
			s.arena = append(s.arena, '\f')
		case 'n':
			s.arena = append(s.arena, '\n')
		case 'r':
			s.arena = append(s.arena, '\r')
		case 't':
			s.arena = append(s.arena, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return nil, s.syntax("bad \\u escape")
			}
			if utf16.IsSurrogate(r) {
				// A pair is two escapes; a lone half becomes U+FFFD, as encoding/json does.
				save := s.pos
				r2 := rune(-1)
				if s.pos+1 < len(s.buf) && s.buf[s.pos] == '\\' && s.buf[s.pos+1] == 'u' {
					s.pos += 2
					if x, ok := s.hex4(); ok {
						r2 = x
					}
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
				} else {
					s.pos = save
					r = utf8.RuneError
				}
			}
			s.arena = utf8.AppendRune(s.arena, r)
		default:
			s.pos--
			return nil, s.syntax("bad escape")
		}
	}
	return nil, s.syntax("unterminated string")
}

func (s *scanner) hex4() (rune, bool) {
	if len(s.buf)-s.pos < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s.buf[s.pos : s.pos+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	s.pos += 4
	return r, true
}

// skip consumes one value of any type, checking its syntax.
func (s *scanner) skip() error {
	switch s.peek() {
	case '"':
		// Validate without copying escapes into the arena.
		s.pos++
		for s.pos < len(s.buf) {
			c := s.buf[s.pos]
			switch {
			case c == '"':
				s.pos++
				return nil
			case c < 0x20:
				return s.syntax("control character in string")
			case c == '\\':
				if s.pos+1 >= len(s.buf) {
					return s.syntax("unterminated string")
				}
				switch s.buf[s.pos+1] {
				case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
					s.pos += 2
				case 'u':
					s.pos += 2
					if _, ok := s.hex4(); !ok {
						return s.syntax("bad \\u escape")
					}
				default:
					s.pos++
					return s.syntax("bad escape")
				}
				continue
			}
			s.pos++
		}
		return s.syntax("unterminated string")
	case '{':
		return s.object(func([]byte) error { return s.skip() })
	case '[':
		return s.array(s.skip)
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		return s.number()
	}
}

// number consumes a number, checking JSON's grammar.
func (s *scanner) number() error {
	start := s.pos
	digits := func() int {
		n := 0
		for s.pos < len(s.buf) && s.buf[s.pos] >= '0' && s.buf[s.pos] <= '9' {
			s.pos++
			n++
		}
		return n
	}
	if s.pos < len(s.buf) && s.buf[s.pos] == '-' {
		s.pos++
	}
	if s.pos < len(s.buf) && s.buf[s.pos] == '0' {
		s.pos++
	} else if digits() == 0 {
		s.pos = start
		return s.syntax("expected a value")
	}
	if s.pos < len(s.buf) && s.buf[s.pos] == '.' {
		s.pos++
		if digits() == 0 {
			return s.syntax("expected a digit")
		}
	}
	if s.pos < len(s.buf) && (s.buf[s.pos] == 'e' || s.buf[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.buf) && (s.buf[s.pos] == '+' || s.buf[s.pos] == '-') {
			s.pos++
		}
		if digits() == 0 {
			return s.syntax("expected a digit")
		}
	}
	return nil
}
