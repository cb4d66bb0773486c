// Command pbschema-gen writes the protobuf field table that the dev cluster uses to decode
// kubectl's protobuf request bodies (crates/devcluster/src/pbschema.json).
//
// It reads the `protobuf` and `json` struct tags of the Kubernetes API types by reflection, so
// the table holds, per Go type, each field's protobuf number, JSON name, kind and omitempty
// flag. Run it from this directory: `go run . > ../src/pbschema.json`.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Field is one protobuf field of a Go API type.
type Field struct {
	Tag       int    `json:"t"`
	JSON      string `json:"j"`
	Kind      string `json:"k"`
	Type      string `json:"m,omitempty"`
	Repeated  bool   `json:"r,omitempty"`
	OmitEmpty bool   `json:"o,omitempty"`
	Pointer   bool   `json:"p,omitempty"`
	Inline    bool   `json:"i,omitempty"`
	// Map fields: key kind, value kind and value message type.
	MapKey   string `json:"mk,omitempty"`
	MapValue string `json:"mv,omitempty"`
	MapType  string `json:"mm,omitempty"`
}

// Schema is the whole table.
type Schema struct {
	// "apps/v1 Deployment" -> Go type name.
	Kinds map[string]string  `json:"kinds"`
	Types map[string][]Field `json:"types"`
}

var special = map[reflect.Type]string{
	reflect.TypeOf(metav1.Time{}):          "time",
	reflect.TypeOf(metav1.MicroTime{}):     "microtime",
	reflect.TypeOf(metav1.Duration{}):      "duration",
	reflect.TypeOf(resource.Quantity{}):    "quantity",
	reflect.TypeOf(intstr.IntOrString{}):   "intorstring",
	reflect.TypeOf(runtime.RawExtension{}): "raw",
	reflect.TypeOf(metav1.FieldsV1{}):      "fieldsv1",
}

func typeName(t reflect.Type) string {
	p := t.PkgPath()
	p = strings.TrimPrefix(p, "k8s.io/api/")
	p = strings.TrimPrefix(p, "k8s.io/apimachinery/pkg/apis/")
	p = strings.TrimPrefix(p, "k8s.io/apimachinery/pkg/")
	return p + "." + t.Name()
}

type gen struct {
	s    Schema
	todo []reflect.Type
	cur  string
}

// scalar returns the kind of a non-struct value type, and a message type for structs.
func (g *gen) valueKind(t reflect.Type) (kind, msg string) {
	if k, ok := special[t]; ok {
		return k, ""
	}
	switch t.Kind() {
	case reflect.String:
		return "string", ""
	case reflect.Bool:
		return "bool", ""
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "int", ""
	case reflect.Float64:
		return "double", ""
	case reflect.Float32:
		return "float", ""
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "bytes", ""
		}
		// A named slice type is its own message with the items as field 1.
		if t.Name() != "" {
			g.wrapped(t)
			return "msg", typeName(t)
		}
	case reflect.Struct:
		g.todo = append(g.todo, t)
		return "msg", typeName(t)
	}
	fmt.Fprintf(os.Stderr, "unsupported value type %v (in %v)\n", t, g.cur)
	os.Exit(1)
	return "", ""
}

func (g *gen) wrapped(t reflect.Type) {
	name := typeName(t)
	if _, ok := g.s.Types[name]; ok {
		return
	}
	k, m := g.valueKind(t.Elem())
	g.s.Types[name] = []Field{{Tag: 1, JSON: "items", Kind: k, Type: m, Repeated: true}}
}

func (g *gen) walk(t reflect.Type) {
	name := typeName(t)
	if _, ok := g.s.Types[name]; ok {
		return
	}
	fields := []Field{}
	g.s.Types[name] = fields
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		g.cur = name + "." + sf.Name
		pb := sf.Tag.Get("protobuf")
		if pb == "" || pb == "-" {
			continue
		}
		parts := strings.Split(pb, ",")
		tag, err := strconv.Atoi(parts[1])
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s.%s: bad protobuf tag %q\n", name, sf.Name, pb)
			os.Exit(1)
		}
		js := strings.Split(sf.Tag.Get("json"), ",")
		f := Field{Tag: tag, JSON: js[0]}
		for _, o := range js[1:] {
			switch o {
			case "omitempty":
				f.OmitEmpty = true
			case "inline":
				f.Inline = true
			}
		}
		if f.JSON == "" && sf.Anonymous {
			f.Inline = true
		}
		ft := sf.Type
		if ft.Kind() == reflect.Pointer {
			f.Pointer = true
			ft = ft.Elem()
		}
		switch {
		case special[ft] != "":
			f.Kind = special[ft]
		case ft.Kind() == reflect.Map:
			f.Kind = "map"
			f.MapKey, _ = g.valueKind(ft.Key())
			f.MapValue, f.MapType = g.valueKind(ft.Elem())
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() != reflect.Uint8:
			f.Repeated = true
			et := ft.Elem()
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			f.Kind, f.Type = g.valueKind(et)
		default:
			f.Kind, f.Type = g.valueKind(ft)
		}
		fields = append(fields, f)
	}
	sort.Slice(fields, func(a, b int) bool { return fields[a].Tag < fields[b].Tag })
	g.s.Types[name] = fields
}

func main() {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, autoscalingv1.AddToScheme,
		autoscalingv2.AddToScheme, batchv1.AddToScheme, coordinationv1.AddToScheme,
		discoveryv1.AddToScheme, eventsv1.AddToScheme, networkingv1.AddToScheme,
		policyv1.AddToScheme, rbacv1.AddToScheme, schedulingv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	g := &gen{s: Schema{Kinds: map[string]string{}, Types: map[string][]Field{}}}
	for gvk, t := range scheme.AllKnownTypes() {
		if gvk.Version == runtime.APIVersionInternal || strings.HasSuffix(gvk.Kind, "List") ||
			strings.HasSuffix(gvk.Kind, "Options") || gvk.Kind == "WatchEvent" ||
			gvk.Kind == "Status" || gvk.Kind == "APIVersions" || gvk.Kind == "APIGroup" ||
			gvk.Kind == "APIGroupList" || gvk.Kind == "APIResourceList" {
			continue
		}
		if _, err := typeNameCheck(t); err != nil {
			continue
		}
		g.s.Kinds[gvk.GroupVersion().String()+" "+gvk.Kind] = typeName(t)
		g.todo = append(g.todo, t)
	}
	for len(g.todo) > 0 {
		t := g.todo[len(g.todo)-1]
		g.todo = g.todo[:len(g.todo)-1]
		g.walk(t)
	}
	out, err := json.Marshal(g.s)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
	os.Stdout.Write([]byte("\n"))
}

// typeNameCheck keeps only types with protobuf tags (the API kinds).
func typeNameCheck(t reflect.Type) (string, error) {
	if t.Kind() != reflect.Struct {
		return "", fmt.Errorf("not a struct")
	}
	if f, ok := t.FieldByName("ObjectMeta"); !ok || f.Tag.Get("protobuf") == "" {
		return "", fmt.Errorf("no object metadata")
	}
	return typeName(t), nil
}
