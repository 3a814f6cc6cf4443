package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/nocbridge/nocbridge/internal/store"
	"github.com/nocbridge/nocbridge/internal/vantage"
)

// clusterData is the /cluster page: the cluster as /api/v1/cluster shows
// it. The store's nodes and streams are shown as tables; the leader and the
// edge sites, and any other field the cluster info carries, are rendered
// from its JSON as they come, so whatever the status holds is on the page.
type clusterData struct {
	Clustered bool
	Info      clusterInfo
	// LeaderName is the node that evaluates rules (the lease's holder),
	// when the cluster info says; Leader its details as they come.
	LeaderName string
	Leader     *jsonValue
	Edge       *jsonValue
	Other      []jsonField // fields this page does not know, as they come
	Vantage    *vantage.Status
	Disagree   []disagreement
}

// clusterInfo is the part of store.ClusterInfo's JSON the page lays out
// itself.
type clusterInfo struct {
	Enabled    bool                 `json:"enabled"`
	Name       string               `json:"name"`
	Node       string               `json:"node"`
	NATSURL    string               `json:"nats_url"`
	Ready      bool                 `json:"ready"`
	MetaLeader string               `json:"meta_leader"`
	Nodes      []store.ClusterNode  `json:"nodes"`
	Streams    []store.StreamStatus `json:"streams"`
	Error      string               `json:"error"`
}

// known are the cluster info's fields the page lays out itself ("leader"
// and "edge" have their own sections).
var known = map[string]bool{"enabled": true, "name": true, "node": true, "nats_url": true, "ready": true,
	"meta_leader": true, "nodes": true, "streams": true, "error": true, "leader": true, "edge": true, "vantage": true}

// disagreement is a device whose nodes disagree, with who was outvoted.
type disagreement struct {
	vantage.DeviceResults
	Outvoted []string
}

func (c *Console) cluster(w http.ResponseWriter, r *http.Request) {
	var data clusterData
	if c.d.Cluster != nil {
		ctx, cancel := readContext(r)
		ci := c.d.Cluster(ctx)
		cancel()
		if err := data.read(ci); err != nil {
			c.log.Error("console: the cluster info does not read as JSON", "err", err)
			c.fail(w, r, http.StatusInternalServerError, "Cluster", "The cluster's state could not be read: "+err.Error())
			return
		}
	}
	data.Clustered = data.Info.Enabled
	if data.Clustered && c.d.ClusterVantage != nil {
		st := c.d.ClusterVantage()
		data.Vantage = &st
		for _, d := range st.Disagreements {
			dis := disagreement{DeviceResults: d}
			for _, res := range d.Results {
				if res.Fresh && res.Up != d.Up {
					dis.Outvoted = append(dis.Outvoted, res.Node)
				}
			}
			data.Disagree = append(data.Disagree, dis)
		}
	}
	v := c.page(r, "Cluster", "cluster", data)
	v.Refresh = true
	c.render(w, http.StatusOK, "cluster", v)
}

// read fills the page from the cluster info's JSON.
func (d *clusterData) read(ci store.ClusterInfo) error {
	body, err := json.Marshal(ci)
	if err != nil {
		return err
	}
	return d.readJSON(body)
}

// readJSON fills the page from the cluster info as JSON.
func (d *clusterData) readJSON(body []byte) error {
	if err := json.Unmarshal(body, &d.Info); err != nil {
		return err
	}
	doc, err := parseJSON(body)
	if err != nil {
		return err
	}
	for _, f := range doc.Fields {
		switch {
		case f.Key == "leader":
			d.Leader = f.Value
			d.LeaderName = f.Value.name()
		case f.Key == "edge":
			d.Edge = f.Value
		case !known[f.Key]:
			d.Other = append(d.Other, f)
		}
	}
	return nil
}

// jsonValue is a JSON value as it came, object keys in their order, for
// rendering what the page has no layout of: a scalar as text, an object as
// a list of its fields, an array of objects as a table.
type jsonValue struct {
	Text   string // a scalar
	Fields []jsonField
	IsObj  bool
	Items  []*jsonValue
	IsList bool
	// Columns are the keys of an array of objects (the union, in their
	// first order), which then renders as a table.
	Columns []string
}

type jsonField struct {
	Key   string
	Value *jsonValue
}

// Cell is the value of column key of an object in a table; nil when it
// lacks it.
func (v *jsonValue) Cell(key string) *jsonValue {
	for _, f := range v.Fields {
		if f.Key == key {
			return f.Value
		}
	}
	return nil
}

// name is a leader's node: the value when it is a string, else its "node"
// or "name" field.
func (v *jsonValue) name() string {
	if v == nil {
		return ""
	}
	if !v.IsObj && !v.IsList {
		return v.Text
	}
	for _, k := range []string{"node", "name"} {
		if c := v.Cell(k); c != nil && !c.IsObj && !c.IsList {
			return c.Text
		}
	}
	return ""
}

// Empty reports a value with nothing in it: null, "", {}, [].
func (v *jsonValue) Empty() bool {
	return v == nil || (!v.IsObj && !v.IsList && (v.Text == "" || v.Text == "null")) ||
		(v.IsObj && len(v.Fields) == 0) || (v.IsList && len(v.Items) == 0)
}

// parseJSON reads one JSON value, keeping object keys in order.
func parseJSON(b []byte) (*jsonValue, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := parseValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("more than one JSON value")
	}
	return v, nil
}

func parseValue(dec *json.Decoder) (*jsonValue, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			v := &jsonValue{IsObj: true}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				fv, err := parseValue(dec)
				if err != nil {
					return nil, err
				}
				v.Fields = append(v.Fields, jsonField{Key: kt.(string), Value: fv})
			}
			_, err := dec.Token() // }
			return v, err
		case '[':
			v := &jsonValue{IsList: true}
			objects := true
			seen := map[string]bool{}
			for dec.More() {
				item, err := parseValue(dec)
				if err != nil {
					return nil, err
				}
				v.Items = append(v.Items, item)
				objects = objects && item.IsObj
				for _, f := range item.Fields {
					if !seen[f.Key] {
						seen[f.Key] = true
						v.Columns = append(v.Columns, f.Key)
					}
				}
			}
			if !objects {
				v.Columns = nil
			}
			_, err := dec.Token() // ]
			return v, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case string:
		return &jsonValue{Text: t}, nil
	case json.Number:
		return &jsonValue{Text: t.String()}, nil
	case bool:
		return &jsonValue{Text: strconv.FormatBool(t)}, nil
	case nil:
		return &jsonValue{Text: "null"}, nil
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}
