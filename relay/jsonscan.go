package relay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
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
	if s.pos < len(s.buf) && s.buf[s.pos] > ' ' {
		return s.buf[s.pos] // compact JSON, as Lambda sends it
	}
	s.ws()
	if s.pos >= len(s.buf) {
		return 0
	}
	return s.buf[s.pos]
}

func (s *scanner) expect(c byte) error {
	if s.pos < len(s.buf) && s.buf[s.pos] == c {
		s.pos++
		return nil
	}
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
	var ks keys
	ks.init()
	return s.fields(&ks, func(_ int, key []byte) error { return member(key) })
}

// maxKeys is how many names a keys table holds.
const maxKeys = 16

// keys recognises the keys of one kind of object without scanning them as
// strings. Lambda writes every record's keys in the same order, so the key
// that followed the previous one last time is compared with the input
// first; only a key that differs is scanned and looked up. Names not given
// to init are learned as they come, up to maxKeys.
type keys struct {
	names [maxKeys]string
	n     int // names in use: init's, then the learned ones
	// after[i+1] is the index of the key that followed key i last time;
	// after[0] the first key, or the one after a key not in the table. -1: none.
	after [maxKeys + 1]int8
}

// init sets the names the caller dispatches on, at indexes 0, 1, …
func (ks *keys) init(known ...string) {
	ks.n = copy(ks.names[:], known)
	for i := range ks.after {
		ks.after[i] = -1
	}
}

// index returns key's index, learning it if there is room, or -1. Only a
// key read from the input as is (raw, no escapes) is learned: its name is
// then what a later literal comparison must match.
func (ks *keys) index(key []byte, raw bool) int {
	for i, name := range ks.names[:ks.n] {
		if string(key) == name {
			return i
		}
	}
	if !raw || ks.n == maxKeys {
		return -1
	}
	ks.names[ks.n] = bytesToString(key)
	ks.n++
	return ks.n - 1
}

// fields calls member for each key of the object at the cursor, with the
// key's index in ks (-1 if it has none) and the key itself; member must
// consume the value.
func (s *scanner) fields(ks *keys, member func(k int, key []byte) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	prev := -1
	for {
		if s.peek() != '"' {
			return s.syntax("expected a key")
		}
		k := int(ks.after[prev+1])
		key, ok := []byte(nil), false
		if k >= 0 {
			key, ok = s.literalKey(ks.names[k])
		}
		if !ok {
			start := s.pos
			var err error
			if key, err = s.str(); err != nil {
				return err
			}
			if err := s.expect(':'); err != nil {
				return err
			}
			k = ks.index(key, s.pos-start == len(key)+3)
			ks.after[prev+1] = int8(k)
		}
		if err := member(k, key); err != nil {
			return err
		}
		prev = k
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

// literalKey consumes "name": if it is at the cursor, exactly, and returns
// the key as a slice of the input.
func (s *scanner) literalKey(name string) ([]byte, bool) {
	rest := s.buf[s.pos:]
	n := len(name)
	if len(rest) < n+3 || rest[n+1] != '"' || rest[n+2] != ':' || string(rest[1:n+1]) != name {
		return nil, false
	}
	s.pos += n + 3
	return rest[1 : n+1 : n+1], true
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
	if n, ok := plain(s.buf[start:]); ok {
		s.pos += n + 1
		return s.buf[start : start+n : start+n], nil
	}
	return s.unescape(start)
}

// plain finds the closing quote of a string whose contents start at b[0].
// It reports ok only when the contents hold neither an escape nor a
// control character; otherwise the caller takes the byte-by-byte path,
// which also says where the string is malformed.
//
// Keys and most values are short: eight bytes at a time, the first quote,
// backslash or control character is found with SWAR (in (x-0x01..)&^x a
// byte's top bit is set where x had a zero byte, exactly for the lowest
// one: a borrow only starts at a match). Bodies are long: past 64 bytes
// the vectorised IndexByte finds the quote and the rest is checked
// branch-free.
func plain(b []byte) (n int, ok bool) {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i < 64 && i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		q, e := x^lo*'"', x^lo*'\\'
		if m := ((q-lo)&^q | (e-lo)&^e | (x-lo*0x20)&^x) & hi; m != 0 {
			j := i + bits.TrailingZeros64(m)/8
			return j, b[j] == '"'
		}
	}
	n = bytes.IndexByte(b[i:], '"')
	if n < 0 {
		return 0, false
	}
	n += i
	if bytes.IndexByte(b[i:n], '\\') >= 0 || control(b[i:n]) {
		return 0, false
	}
	return n, true
}

// control reports whether b holds a byte below 0x20. In SWAR, a byte's top
// bit is set in (x-0x20)&^x when it is below 0x20, and a borrow only ever
// starts at such a byte, so the OR of every word says it exactly.
func control(b []byte) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	var acc uint64
	for ; len(b) >= 32; b = b[32:] {
		w, x := binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])
		y, z := binary.LittleEndian.Uint64(b[16:]), binary.LittleEndian.Uint64(b[24:])
		acc |= (w-lo*0x20)&^w | (x-lo*0x20)&^x | (y-lo*0x20)&^y | (z-lo*0x20)&^z
	}
	for ; len(b) >= 8; b = b[8:] {
		w := binary.LittleEndian.Uint64(b)
		acc |= (w - lo*0x20) &^ w
	}
	for _, c := range b {
		if c < 0x20 {
			return true
		}
	}
	return acc&hi != 0
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
		if n, ok := plain(s.buf[s.pos:]); ok {
			s.pos += n + 1
			return nil
		}
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
