package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"sessionproxy/sessionstore"
)

// The shared stores' sections under session: are the store packages' own:
// each kind registers its section's name, settings, defaults and rules
// with sessionstore (sessionstore.RegisterKind), and config decodes and
// checks whatever kinds the program links in, naming none of them.

// Stores holds the shared stores' sections of session:, by kind name
// (sessionstore.Kind): every registered kind, with its defaults where the
// file has no section. At most one is in use (Settings.InUse).
type Stores map[string]sessionstore.Settings

// defaultStores returns each registered kind's default settings.
func defaultStores() Stores {
	s := Stores{}
	for _, k := range sessionstore.Kinds() {
		s[k.Name] = k.Settings()
	}
	return s
}

// Apply sets each store's part of o (sessionstore.Settings.Apply), in the
// order of their names, and returns their errors. Every store's part is
// set even after one fails, so that o.Check sees all.
func (s Stores) Apply(o *sessionstore.Options) error {
	var errs []error
	for _, k := range sessionstore.Kinds() {
		if st := s[k.Name]; st != nil {
			errs = append(errs, st.Apply(o))
		}
	}
	return errors.Join(errs...)
}

// Equal reports whether s and t hold the same settings, as fmt prints
// them (an empty list and none are the same).
func (s Stores) Equal(t Stores) bool {
	if len(s) != len(t) {
		return false
	}
	for name, st := range s {
		if fmt.Sprint(st) != fmt.Sprint(t[name]) {
			return false
		}
	}
	return true
}

// plainSession is Session without its UnmarshalYAML.
type plainSession Session

// UnmarshalYAML decodes session: into the Session's own fields and each
// registered kind's section. It is yaml.v3's older kind of unmarshaler on
// purpose: the unmarshal it is handed is the whole file's decoder, so that
// the sections are read as strictly as the rest (an unknown key is an
// error at its line), which yaml.Node.Decode would not do.
func (s *Session) UnmarshalYAML(unmarshal func(any) error) error {
	if s.Stores == nil {
		s.Stores = defaultStores()
	}
	// One struct for the whole mapping: the Session's fields inline, and
	// a field per kind named after its section.
	kinds := sessionstore.Kinds()
	fields := []reflect.StructField{{Name: "Session", Type: reflect.TypeFor[plainSession](), Tag: `yaml:",inline"`}}
	for i, k := range kinds {
		if sessionKeys[k.Name] {
			panic("config: store kind " + k.Name + " has the name of a key of session:")
		}
		fields = append(fields, reflect.StructField{
			Name: fmt.Sprintf("Kind%d", i),
			Type: reflect.TypeFor[section](),
			Tag:  reflect.StructTag(`yaml:"` + k.Name + `"`),
		})
	}
	t := reflect.StructOf(fields)
	v := reflect.New(t).Elem()
	v.Field(0).Set(reflect.ValueOf(plainSession(*s)))
	for i, k := range kinds {
		st := s.Stores[k.Name]
		if st == nil {
			st = k.Settings()
			s.Stores[k.Name] = st
		}
		v.Field(i + 1).Set(reflect.ValueOf(section{kind: k.Name, settings: st}))
	}
	err := unmarshal(v.Addr().Interface())
	*s = Session(v.Field(0).Interface().(plainSession))
	return renameType(err, t, "config.Session")
}

// sessionKeys are the keys of session: that are Session's own.
var sessionKeys = func() map[string]bool {
	keys := map[string]bool{}
	t := reflect.TypeFor[Session]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		keys[name] = true
	}
	return keys
}()

// section is one kind's section while session: is decoded.
type section struct {
	kind     string
	settings sessionstore.Settings // a pointer to a struct
}

// UnmarshalYAML decodes the section over the settings' defaults, through
// a copy of their struct whose time.Duration fields are Durations: a
// store's durations are written as config's are.
func (sec *section) UnmarshalYAML(unmarshal func(any) error) error {
	dst := reflect.ValueOf(sec.settings).Elem()
	mt, _ := mirror(dst.Type())
	m := reflect.New(mt).Elem()
	copyValue(m, dst)
	err := unmarshal(m.Addr().Interface())
	copyValue(dst, m)
	// Named as when config declared the sections' types itself
	// (config.Redis), so that messages read as they did.
	return renameType(err, mt, "config."+strings.ToUpper(sec.kind[:1])+sec.kind[1:])
}

// renameType writes name for t in the messages of a *yaml.TypeError: a
// struct built by reflect would otherwise be spelt out field by field.
func renameType(err error, t reflect.Type, name string) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = strings.ReplaceAll(m, t.String(), name)
	}
	return &yaml.TypeError{Errors: msgs}
}

var durationType = reflect.TypeFor[time.Duration]()

// mirror returns t with every time.Duration in it a Duration, and whether
// there was one. Unexported fields are left out: YAML never sets them.
func mirror(t reflect.Type) (reflect.Type, bool) {
	if t == durationType {
		return reflect.TypeFor[Duration](), true
	}
	switch t.Kind() {
	case reflect.Struct:
		var fields []reflect.StructField
		changed := false
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			ft, c := mirror(f.Type)
			changed = changed || c
			fields = append(fields, reflect.StructField{Name: f.Name, Type: ft, Tag: f.Tag})
		}
		if changed {
			return reflect.StructOf(fields), true
		}
	case reflect.Slice:
		if et, c := mirror(t.Elem()); c {
			return reflect.SliceOf(et), true
		}
	case reflect.Pointer:
		if et, c := mirror(t.Elem()); c {
			return reflect.PointerTo(et), true
		}
	case reflect.Map:
		if et, c := mirror(t.Elem()); c {
			return reflect.MapOf(t.Key(), et), true
		}
	}
	return t, false
}

// copyValue sets dst to src, where one's type is the other's mirror.
func copyValue(dst, src reflect.Value) {
	if dst.Type() == src.Type() {
		dst.Set(src)
		return
	}
	switch dst.Kind() {
	case reflect.Struct:
		for i := range dst.NumField() {
			if f := dst.Type().Field(i); f.IsExported() {
				copyValue(dst.Field(i), src.FieldByName(f.Name))
			}
		}
	case reflect.Slice:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		s := reflect.MakeSlice(dst.Type(), src.Len(), src.Len())
		for i := range src.Len() {
			copyValue(s.Index(i), src.Index(i))
		}
		dst.Set(s)
	case reflect.Pointer:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		p := reflect.New(dst.Type().Elem())
		copyValue(p.Elem(), src.Elem())
		dst.Set(p)
	case reflect.Map:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		m := reflect.MakeMapWithSize(dst.Type(), src.Len())
		for it := src.MapRange(); it.Next(); {
			e := reflect.New(dst.Type().Elem()).Elem()
			copyValue(e, it.Value())
			m.SetMapIndex(it.Key(), e)
		}
		dst.Set(m)
	default: // a Duration and a time.Duration
		dst.SetInt(src.Int())
	}
}

// stores checks the shared stores' sections: each kind's own rules
// (sessionstore.Settings.Check), that at most one is in use, and what
// sessionstore.Options.Check says of them with the rest of session:.
func (v *validator) stores() {
	s := v.c.Session
	o := sessionstore.Options{Async: s.Write == "async", LocalSize: int(s.LocalCache.Size), LocalTTL: s.LocalCache.TTL.Std()}
	_ = s.Stores.Apply(&o) // what fails, each kind's Check says at its line
	var first sessionstore.Kind
	for _, k := range sessionstore.Kinds() {
		st := s.Stores[k.Name]
		if st == nil {
			continue
		}
		if st.InUse() {
			if first.Name == "" {
				first = k
			} else {
				path := "session." + k.Name + "." + k.Key
				v.errf(path, "%s and session.%s.%s exclude each other: choose one shared store", path, first.Name, first.Key)
			}
		}
		for _, p := range st.Check(&o) {
			v.errf(p.Path, "%s", p.Msg)
		}
	}
	switch err := o.Check(); {
	case errors.Is(err, sessionstore.ErrAsyncNeedsLocal):
		v.errf("session.write", "session.write: %v", sessionstore.ErrAsyncNeedsLocal)
	case errors.Is(err, sessionstore.ErrNowhere):
		lacking := "there is no shared store"
		if k, ok := sessionstore.DefaultKind(); ok {
			lacking = "there are no " + k.Name + " " + k.Key
		}
		v.errf("session.local_cache.size", "session.local_cache.size is 0 and %s: sessions would be kept nowhere", lacking)
	}
}
