package protocol

import (
	"bytes"
	"encoding/json"
	"iter"
	"strconv"
	"unicode/utf8"
)

// Helpers to read JSON that json.Valid has already accepted. With the syntax settled by the
// standard library, finding an object's members is a plain byte scan over sub-slices, which keeps
// ParseHeartbeat to a few allocations, and keys match exactly (encoding/json would also match
// "Name" to a field tagged "name", but unknown fields must be ignored).

// asObject returns raw trimmed if raw is valid JSON holding an object, else nil.
func asObject(raw []byte) []byte {
	if !json.Valid(raw) {
		return nil
	}
	raw = bytes.TrimSpace(raw) // after json.Valid, only JSON whitespace is left to trim
	if raw[0] != '{' {
		return nil
	}
	return raw
}

// members yields the keys (unescaped) and raw values of obj, a valid JSON object without
// surrounding space, or nothing if obj is nil. A repeated key is yielded each time.
func members(obj []byte) iter.Seq2[[]byte, []byte] {
	return func(yield func(key, val []byte) bool) {
		if len(obj) == 0 {
			return
		}
		i := skipSpace(obj, 1)
		for obj[i] != '}' {
			end := skipValue(obj, i)
			key := obj[i+1 : end-1]
			if bytes.IndexByte(key, '\\') >= 0 {
				key = []byte(unquote(obj[i:end]))
			}
			i = skipSpace(obj, skipSpace(obj, end)+1) // past ':'
			end = skipValue(obj, i)
			if !yield(key, obj[i:end]) {
				return
			}
			i = skipSpace(obj, end)
			if obj[i] == ',' {
				i = skipSpace(obj, i+1)
			}
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the value that starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	default: // number, true, false, null: the bytes they may hold
		for i < len(b) && (b[i] == '-' || b[i] == '+' || b[i] == '.' || '0' <= b[i] && b[i] <= '9' || 'a' <= b[i] && b[i] <= 'z' || b[i] == 'E') {
			i++
		}
		return i
	}
}

// skipString returns the end of the string whose opening quote is b[i]. (A byte loop: strings
// here are short, bytes.IndexByte is slower on them.)
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// unquote decodes the JSON string literal raw; invalid UTF-8 becomes U+FFFD as in encoding/json.
func unquote(raw []byte) string {
	s := raw[1 : len(raw)-1]
	if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
		return string(s)
	}
	var out string
	_ = json.Unmarshal(raw, &out) // cannot fail: raw is a valid JSON string
	return out
}

// Kinds of JSON values, told by their first byte.
func isString(raw []byte) bool { return raw[0] == '"' }
func isNumber(raw []byte) bool { return raw[0] == '-' || '0' <= raw[0] && raw[0] <= '9' }
func isBool(raw []byte) bool   { return raw[0] == 't' || raw[0] == 'f' }
func isNull(raw []byte) bool   { return raw[0] == 'n' }

// wholeNumber reads the JSON number num when it is a whole number >= 0, exactly: 86400, 86400.0
// and 8.64e4 all give 86400, since a client's JSON library may print an integer as a float.
// Otherwise it returns the reason.
func wholeNumber(num []byte) (int64, string) {
	neg := num[0] == '-'
	if neg {
		num = num[1:]
	}
	mant, exp, dot := num, 0, -1
	for i, c := range num {
		if c == '.' {
			dot = i
		} else if c == 'e' || c == 'E' {
			mant = num[:i]
			exp, _ = strconv.Atoi(string(num[i+1:])) // out of range gives ±MaxInt, clamped next
			// Beyond ±(digits+20), every digit lands above 10^19 or below the point: the
			// verdict does not change, and the arithmetic below cannot overflow.
			exp = max(-len(num)-20, min(exp, len(num)+20))
			break
		}
	}
	if neg && bytes.ContainsAny(mant, "123456789") {
		return 0, "must not be negative"
	}
	digits, point := len(mant), len(mant)+exp // point: how many digits precede the decimal point
	if dot >= 0 {
		digits, point = digits-1, dot+exp
	}
	var n int64
	for k := 0; k < max(digits, point); k++ {
		d := int64(0)
		if k < digits {
			j := k
			if dot >= 0 && k >= dot {
				j++ // skip the '.'
			}
			d = int64(mant[j] - '0')
		}
		if k >= point {
			if d != 0 {
				return 0, "must be an integer"
			}
			continue
		}
		if n > (1<<63-1-d)/10 {
			return 0, "is out of range"
		}
		n = n*10 + d
	}
	return n, ""
}
