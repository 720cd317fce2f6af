package sqsevent

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
)

// scanner reads JSON from a byte slice without building a tree: the event
// decoder walks an SQS event with it in one pass. Its methods take the
// index to read at and return the index after what they read, so the
// position stays in registers rather than going through memory between
// calls. Every method checks its bounds; malformed input is an error,
// never a panic.
type scanner struct {
	buf []byte
	// arena holds strings that needed unescaping and decoded Binary
	// values, in blocks (see reserve): what is written there is never moved
	// or written again, so slices of it stay valid and unchanged.
	arena []byte
	// The last string unescaped: where its contents start in buf (0 for
	// none: contents follow a quote), the index after it, and its value
	// in the arena. A record read again from its start, after a template
	// did not match it after all, finds its body here instead of
	// unescaping it again.
	lastAt, lastEnd int
	last            []byte
	// depth is how many values skip is inside; see maxDepth.
	depth int
}

// maxDepth bounds the nesting of skipped values, as encoding/json's 10,000
// does. The event's own structure adds a few levels to it.
const maxDepth = 10000

var errEOF = errors.New("unexpected end of JSON")

func (s *scanner) syntax(i int, what string) error {
	if i >= len(s.buf) {
		return fmt.Errorf("invalid JSON at offset %d: %w", i, errEOF)
	}
	return fmt.Errorf("invalid JSON at offset %d: %s, found %q", i, what, s.buf[i])
}

// ws returns the index of the first byte at or after i that is not space.
func (s *scanner) ws(i int) int {
	for i < len(s.buf) {
		switch s.buf[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// peek returns the first byte at or after i that is not space, and its
// index; at the end of the input, 0 and len(buf).
func (s *scanner) peek(i int) (byte, int) {
	if i < len(s.buf) && s.buf[i] > ' ' {
		return s.buf[i], i // compact JSON, as Lambda sends it
	}
	i = s.ws(i)
	if i >= len(s.buf) {
		return 0, i
	}
	return s.buf[i], i
}

// expect consumes c, the next byte that is not space.
func (s *scanner) expect(i int, c byte) (int, error) {
	if i < len(s.buf) && s.buf[i] == c {
		return i + 1, nil
	}
	b, j := s.peek(i)
	if b != c {
		return j, s.syntax(j, fmt.Sprintf("expected %q", c))
	}
	return j + 1, nil
}

// kind names the JSON type of the value at i, for type errors.
func (s *scanner) kind(i int) string {
	switch c, _ := s.peek(i); c {
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

// object calls member for each key of the object at i; member must
// consume the value.
func (s *scanner) object(i int, member func(i int, key []byte) (int, error)) (int, error) {
	return s.fields(i, nil, func(i, _ int, key []byte) (int, error) { return member(i, key) })
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
	// guess[i+1] is the name of the key that followed key i last time, and
	// guessK[i+1] its index; [0] is for the first key, or the one after a
	// key not in the table. The name is kept here, not looked up, to keep
	// a load off the path from one key to the next.
	guess  [maxKeys + 1]string
	guessK [maxKeys + 1]int8
}

// init sets the names the caller dispatches on, at indexes 0, 1, …
func (ks *keys) init(known ...string) {
	ks.n = copy(ks.names[:], known)
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

// fields calls member for each key of the object at i, with the key's
// index in ks (-1 if it has none; ks may be nil) and the key itself;
// member must consume the value.
func (s *scanner) fields(i int, ks *keys, member func(i, k int, key []byte) (int, error)) (int, error) {
	i, err := s.expect(i, '{')
	if err != nil {
		return i, err
	}
	c, i := s.peek(i)
	if c == '}' {
		return i + 1, nil
	}
	prev := -1
	for {
		if c != '"' {
			return i, s.syntax(i, "expected a key")
		}
		k, key, ok := -1, []byte(nil), false
		if ks != nil {
			if name := ks.guess[prev+1]; name != "" {
				key, i, ok = s.literalKey(i, name)
				k = int(ks.guessK[prev+1])
			}
		}
		if !ok {
			start := i
			if key, i, err = s.str(i); err != nil {
				return i, err
			}
			if i, err = s.expect(i, ':'); err != nil {
				return i, err
			}
			k = -1
			if ks != nil {
				k = ks.index(key, i-start == len(key)+3)
				ks.guess[prev+1], ks.guessK[prev+1] = "", -1
				if k >= 0 {
					ks.guess[prev+1], ks.guessK[prev+1] = ks.names[k], int8(k)
				}
			}
		}
		if i, err = member(i, k, key); err != nil {
			return i, err
		}
		prev = k
		switch c, i = s.peek(i); c {
		case ',':
			c, i = s.peek(i + 1)
		case '}':
			return i + 1, nil
		default:
			return i, s.syntax(i, "expected ',' or '}'")
		}
	}
}

// literalKey consumes "name": if it is at i, exactly, and returns the key
// as a slice of the input.
func (s *scanner) literalKey(i int, name string) ([]byte, int, bool) {
	rest := s.buf[i:]
	n := len(name)
	if len(rest) < n+3 || rest[n+1] != '"' || rest[n+2] != ':' || string(rest[1:n+1]) != name {
		return nil, i, false
	}
	return rest[1 : n+1 : n+1], i + n + 3, true
}

// array calls elem for each element of the array at i; elem must consume
// it.
func (s *scanner) array(i int, elem func(i int) (int, error)) (int, error) {
	i, err := s.expect(i, '[')
	if err != nil {
		return i, err
	}
	c, i := s.peek(i)
	if c == ']' {
		return i + 1, nil
	}
	for {
		if i, err = elem(i); err != nil {
			return i, err
		}
		switch c, i = s.peek(i); c {
		case ',':
			i++
		case ']':
			return i + 1, nil
		default:
			return i, s.syntax(i, "expected ',' or ']'")
		}
	}
}

// null consumes a null if one is next.
func (s *scanner) null(i int) (int, bool) {
	if c, j := s.peek(i); c == 'n' {
		if j, err := s.literal(j, "null"); err == nil {
			return j, true
		}
	}
	return i, false
}

func (s *scanner) literal(i int, lit string) (int, error) {
	if !s.at(i, lit) {
		return i, s.syntax(i, "expected "+lit)
	}
	return i + len(lit), nil
}

// at reports whether lit is at i, exactly.
func (s *scanner) at(i int, lit string) bool {
	return len(s.buf)-i >= len(lit) && string(s.buf[i:i+len(lit)]) == lit
}

// str reads the string at i. Without escapes it is a slice of the input;
// with escapes it is unescaped into the arena.
func (s *scanner) str(i int) ([]byte, int, error) {
	i, err := s.expect(i, '"')
	if err != nil {
		return nil, i, err
	}
	if n, ok := closingQuote(s.buf[i:]); ok {
		return s.buf[i : i+n : i+n], i + n + 1, nil
	}
	if i == s.lastAt {
		return s.last, s.lastEnd, nil
	}
	v, end, err := s.unescape(i)
	if err == nil {
		s.lastAt, s.lastEnd, s.last = i, end, v
	}
	return v, end, err
}

// closingQuote finds the closing quote of a string whose contents start at b[0].
// It reports ok only when the contents hold neither an escape nor a
// control character; otherwise the caller takes the unescaping path,
// which also says where the string is malformed. The first eight bytes
// are checked inline, which is all most keys and values need; the rest
// of a longer string by indexSpecial, sixteen bytes at a time where there is
// assembly for it.
func closingQuote(b []byte) (n int, ok bool) {
	if len(b) < 8 {
		n = indexSpecialWords(b)
	} else if m, mq := stops(binary.LittleEndian.Uint64(b)); m != 0 {
		// The lowest special byte is a quote if mq has it: mq's lowest bit is
		// exact too, and it has none below a quote.
		return bits.TrailingZeros64(m) / 8, m&-m&mq != 0
	} else {
		n = 8 + indexSpecial(b[8:])
	}
	return n, n < len(b) && b[n] == '"'
}

// stops marks, in the top bit of each byte, the quotes, backslashes and
// control bytes of the eight in x (m) and its quotes (mq). Each mask's
// lowest bit is exact; bits above it may not be (in (x-0x01..)&^x a
// byte's top bit is set where x has a zero byte, and a borrow only starts
// at one).
func stops(x uint64) (m, mq uint64) {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	q, e := x^lo*'"', x^lo*'\\'
	mq = (q - lo) &^ q & hi
	return mq | ((e-lo)&^e|(x-lo*0x20)&^x)&hi, mq
}

// indexSpecialWords returns the index of the first quote, backslash or control
// byte in b, or len(b), eight bytes at a time: indexSpecial where there is no
// assembly, and its reference in tests where there is.
func indexSpecialWords(b []byte) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if m, _ := stops(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 {
			return i
		}
	}
	return i
}

// unescape reads the rest of a string whose contents start at i into the
// arena.
func (s *scanner) unescape(i int) ([]byte, int, error) {
	out := len(s.arena)
	for i < len(s.buf) {
		i, out = s.copyToEscape(i, out)
		if i >= len(s.buf) {
			break
		}
		switch c := s.buf[i]; {
		case c == '"':
			return s.arena[out:len(s.arena):len(s.arena)], i + 1, nil
		case c < 0x20:
			return nil, i, s.syntax(i, "control character in string")
		}
		if i+1 >= len(s.buf) {
			break
		}
		esc := s.buf[i+1]
		i += 2
		out = s.reserve(utf8.UTFMax, out)
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
			r, j, ok := s.hex4(i)
			if !ok {
				return nil, i, s.syntax(i, "bad \\u escape")
			}
			i = j
			if utf16.IsSurrogate(r) {
				// A pair is two escapes; a lone half becomes U+FFFD, as encoding/json does.
				r2 := rune(-1)
				next := i
				if i+1 < len(s.buf) && s.buf[i] == '\\' && s.buf[i+1] == 'u' {
					if x, j, ok := s.hex4(i + 2); ok {
						r2, next = x, j
					}
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r, i = dec, next
				} else {
					r = utf8.RuneError
				}
			}
			s.arena = utf8.AppendRune(s.arena, r)
		default:
			return nil, i - 1, s.syntax(i-1, "bad escape")
		}
	}
	return nil, i, s.syntax(i, "unterminated string")
}

// base64 decodes v into the arena. An empty value is empty, never nil,
// whatever the arena holds (encoding/json reads "" into []byte so too).
func (s *scanner) base64(v []byte) ([]byte, error) {
	if len(v) == 0 {
		return emptyBytes, nil
	}
	start := s.reserve(base64.StdEncoding.DecodedLen(len(v)), len(s.arena))
	var err error
	if s.arena, err = base64.StdEncoding.AppendDecode(s.arena, v); err != nil {
		s.arena = s.arena[:start]
		return nil, fmt.Errorf("not base64: %w", err)
	}
	return s.arena[start:len(s.arena):len(s.arena)], nil
}

var emptyBytes = []byte{}

// arenaBlock is the size of the arena's blocks, in bytes. A new block is
// started when the current one is full, rather than the arena grown and
// copied: an event of JSON bodies unescapes about as many bytes as it has.
const arenaBlock = 64 << 10

// reserve makes room in the arena for n more bytes of the value being written
// from out, and returns where that value starts: in a new block, with what
// is written of it so far, when the current block is full.
func (s *scanner) reserve(n, out int) int {
	if cap(s.arena)-len(s.arena) >= n {
		return out
	}
	partial := s.arena[out:]
	s.arena = append(make([]byte, 0, max(arenaBlock, 2*(len(partial)+n))), partial...)
	return 0
}

// copyToEscape appends to the arena the bytes from i up to the next quote,
// backslash or control byte, unescaping \" \\ and \/ on the way, and
// returns that byte's index (or len(buf)) and where the value being
// written from out now starts. Eight bytes are moved at a time: the whole
// word is written past the arena's length, which then moves over the
// bytes that belong; nothing holds a slice of the arena beyond its length.
func (s *scanner) copyToEscape(i, out int) (int, int) {
	for i+8 <= len(s.buf) {
		out = s.reserve(8, out)
		x := binary.LittleEndian.Uint64(s.buf[i:])
		n := len(s.arena)
		binary.LittleEndian.PutUint64(s.arena[n:n+8], x)
		if m, _ := stops(x); m != 0 {
			k := bits.TrailingZeros64(m) / 8
			// \" \\ and \/, most escapes in JSON bodies, are taken here.
			if j := i + k; j+1 < len(s.buf) && s.buf[j] == '\\' {
				if c := s.buf[j+1]; c == '"' || c == '\\' || c == '/' {
					s.arena = s.arena[:n+k+1]
					s.arena[n+k] = c
					i = j + 2
					continue
				}
			}
			s.arena = s.arena[:n+k]
			return i + k, out
		}
		s.arena = s.arena[:n+8]
		i += 8
	}
	j := i + indexSpecial(s.buf[i:])
	out = s.reserve(j-i, out)
	s.arena = append(s.arena, s.buf[i:j]...)
	return j, out
}

// hex4 reads the four hex digits of a \u escape at i.
func (s *scanner) hex4(i int) (rune, int, bool) {
	if len(s.buf)-i < 4 {
		return 0, i, false
	}
	var r rune
	for _, c := range s.buf[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, i, false
		}
	}
	return r, i + 4, true
}

// skip consumes one value of any type, checking its syntax.
func (s *scanner) skip(i int) (int, error) {
	c, i := s.peek(i)
	switch c {
	case '"':
		// Validate without copying escapes into the arena.
		i++
		if n, ok := closingQuote(s.buf[i:]); ok {
			return i + n + 1, nil
		}
		if i == s.lastAt {
			return s.lastEnd, nil
		}
		for i < len(s.buf) {
			if i += indexSpecial(s.buf[i:]); i >= len(s.buf) {
				break
			}
			switch c := s.buf[i]; {
			case c == '"':
				return i + 1, nil
			case c < 0x20:
				return i, s.syntax(i, "control character in string")
			case c == '\\':
				if i+1 >= len(s.buf) {
					return i, s.syntax(i, "unterminated string")
				}
				switch s.buf[i+1] {
				case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
					i += 2
				case 'u':
					j, ok := 0, false
					if _, j, ok = s.hex4(i + 2); !ok {
						return i + 2, s.syntax(i+2, "bad \\u escape")
					}
					i = j
				default:
					return i + 1, s.syntax(i+1, "bad escape")
				}
				continue
			}
		}
		return i, s.syntax(i, "unterminated string")
	case '{', '[':
		// Skipping recurses: bound it, or a deep enough payload (6 MB
		// nest three million levels) overflows the stack, which no
		// recover catches.
		if s.depth++; s.depth > maxDepth {
			return i, fmt.Errorf("invalid JSON at offset %d: nested more than %d levels deep", i, maxDepth)
		}
		var err error
		if c == '{' {
			i, err = s.object(i, func(i int, _ []byte) (int, error) { return s.skip(i) })
		} else {
			i, err = s.array(i, s.skip)
		}
		s.depth--
		return i, err
	case 't':
		return s.literal(i, "true")
	case 'f':
		return s.literal(i, "false")
	case 'n':
		return s.literal(i, "null")
	default:
		return s.number(i)
	}
}

// number consumes a number, checking JSON's grammar.
func (s *scanner) number(i int) (int, error) {
	digits := func() int {
		n := 0
		for i < len(s.buf) && s.buf[i] >= '0' && s.buf[i] <= '9' {
			i++
			n++
		}
		return n
	}
	start := i
	if i < len(s.buf) && s.buf[i] == '-' {
		i++
	}
	if i < len(s.buf) && s.buf[i] == '0' {
		i++
	} else if digits() == 0 {
		return start, s.syntax(start, "expected a value")
	}
	if i < len(s.buf) && s.buf[i] == '.' {
		i++
		if digits() == 0 {
			return i, s.syntax(i, "expected a digit")
		}
	}
	if i < len(s.buf) && (s.buf[i] == 'e' || s.buf[i] == 'E') {
		i++
		if i < len(s.buf) && (s.buf[i] == '+' || s.buf[i] == '-') {
			i++
		}
		if digits() == 0 {
			return i, s.syntax(i, "expected a digit")
		}
	}
	return i, nil
}
