package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxFileBytes bounds a configuration file.
const MaxFileBytes = 1 << 20

// An UnknownKeyError is a key of a configuration file that no setting has.
type UnknownKeyError struct {
	Key  string // the full key, nats.urll
	Line int
}

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("line %d: unknown key %q", e.Line, e.Key)
}

// Load reads the YAML file at path over c: the keys it names replace c's
// values, the others keep theirs. A key that no setting has is an
// *UnknownKeyError. Load does not validate.
func Load(path string, c *Config) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	if err := Decode(f, c); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// Decode reads a YAML document from r over c, as Load does.
func Decode(r io.Reader, c *Config) error {
	raw, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
	if err != nil {
		return err
	}
	if len(raw) > MaxFileBytes {
		return fmt.Errorf("larger than %d bytes", MaxFileBytes)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return err
	}
	if doc.Kind == 0 { // empty file
		return nil
	}
	keyAt := map[int]string{} // line of a value → its key
	if err := checkKeys(&doc, reflect.TypeFor[Config](), "", keyAt); err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nameKeys(err, keyAt)
	}
	// One document: a second would be silently ignored.
	if err := dec.Decode(new(yaml.Node)); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document")
	}
	return nil
}

// checkKeys walks a YAML node against the struct type t and reports the
// first key that t's yaml tags do not name, with its full path. It records
// the key of each value's line in keyAt.
func checkKeys(n *yaml.Node, t reflect.Type, path string, keyAt map[int]string) error {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := checkKeys(c, t, path, keyAt); err != nil {
				return err
			}
		}
		return nil
	case yaml.AliasNode:
		return checkKeys(n.Alias, t, path, keyAt)
	}
	if t.Kind() != reflect.Struct || n.Kind != yaml.MappingNode {
		return nil // the decoder reports type mismatches
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		full := k.Value
		if path != "" {
			full = path + "." + k.Value
		}
		f, ok := fieldByKey(t, k.Value)
		if !ok {
			return &UnknownKeyError{Key: full, Line: k.Line}
		}
		keyAt[v.Line] = full
		if err := checkKeys(v, f.Type, full, keyAt); err != nil {
			return err
		}
	}
	return nil
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// nameKeys adds the key to each message of a decoding type error
// ("line 4: cannot unmarshal ..." becomes "line 4: eval.store-timeout:
// cannot unmarshal ...").
func nameKeys(err error, keyAt map[int]string) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = m
		var line int
		if _, serr := fmt.Sscanf(m, "line %d:", &line); serr == nil && keyAt[line] != "" {
			prefix := fmt.Sprintf("line %d:", line)
			msgs[i] = prefix + " " + keyAt[line] + ":" + strings.TrimPrefix(m, prefix)
		}
	}
	return errors.New(strings.Join(msgs, "; "))
}
