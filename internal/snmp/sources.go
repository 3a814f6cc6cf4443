package snmp

import (
	"context"
	"encoding/hex"
	"errors"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gosnmp/gosnmp"
)

// Numeric OIDs: Debian ships no IETF MIB files, and polling needs none.
const (
	oidSysUpTime = ".1.3.6.1.2.1.1.3.0" // SNMPv2-MIB sysUpTime.0, hundredths of a second

	oidCiscoCPUTotal5minRev = ".1.3.6.1.4.1.9.9.109.1.1.1.1.8" // CISCO-PROCESS-MIB, percent per CPU row
	oidHrProcessorLoad      = ".1.3.6.1.2.1.25.3.3.1.2"        // HOST-RESOURCES-MIB, percent per processor
	oidSsCPUIdle            = ".1.3.6.1.4.1.2021.11.11.0"      // UCD-SNMP-MIB, idle percent

	oidCiscoMemPoolUsed = ".1.3.6.1.4.1.9.9.48.1.1.1.5" // CISCO-MEMORY-POOL-MIB, bytes per pool
	oidCiscoMemPoolFree = ".1.3.6.1.4.1.9.9.48.1.1.1.6"

	oidHrStorageType  = ".1.3.6.1.2.1.25.2.3.1.2" // HOST-RESOURCES-MIB hrStorageTable columns
	oidHrStorageUnits = ".1.3.6.1.2.1.25.2.3.1.4"
	oidHrStorageSize  = ".1.3.6.1.2.1.25.2.3.1.5"
	oidHrStorageUsed  = ".1.3.6.1.2.1.25.2.3.1.6"
	oidHrStorageRAM   = ".1.3.6.1.2.1.25.2.1.2" // hrStorageRam, the type of physical memory rows

	oidMemTotalReal = ".1.3.6.1.4.1.2021.4.5.0" // UCD-SNMP-MIB, kB
	oidMemAvailReal = ".1.3.6.1.4.1.2021.4.6.0"
)

// Names of the sources, as Result.CPUSource and Result.MemSource report them.
const (
	SourceCisco         = "CISCO-PROCESS-MIB"
	SourceCiscoMemPool  = "CISCO-MEMORY-POOL-MIB"
	SourceHostResources = "HOST-RESOURCES-MIB"
	SourceUCD           = "UCD-SNMP-MIB"
)

// source is one MIB a metric can come from. discover finds the objects it
// reads on a device (none: the device lacks it) and returns their values;
// later polls GET those objects directly and hand their values to compute.
type source struct {
	name     string
	discover func(ctx context.Context, c Client) (oids []string, vals []gosnmp.SnmpPDU, err error)
	compute  func(vals []gosnmp.SnmpPDU) (float64, bool)
}

// cpuSources and memSources are in order of preference.
var cpuSources = []source{
	{name: SourceCisco, discover: walkColumn(oidCiscoCPUTotal5minRev), compute: average},
	{name: SourceHostResources, discover: walkColumn(oidHrProcessorLoad), compute: average},
	{name: SourceUCD, discover: getScalars(oidSsCPUIdle), compute: idleToBusy},
}

var memSources = []source{
	{name: SourceCiscoMemPool, discover: ciscoMemPools, compute: usedOfUsedPlusFree},
	{name: SourceHostResources, discover: hrStorageRAM, compute: hrStorageUsedPercent},
	{name: SourceUCD, discover: getScalars(oidMemTotalReal, oidMemAvailReal), compute: ucdMemUsedPercent},
}

// walkColumn discovers a table column; each row is one object.
func walkColumn(root string) func(context.Context, Client) ([]string, []gosnmp.SnmpPDU, error) {
	return func(ctx context.Context, c Client) ([]string, []gosnmp.SnmpPDU, error) {
		rows, err := c.BulkWalk(ctx, root)
		if err != nil {
			return nil, nil, err
		}
		return names(rows), rows, nil
	}
}

// getScalars discovers scalars: all of them must exist.
func getScalars(oids ...string) func(context.Context, Client) ([]string, []gosnmp.SnmpPDU, error) {
	return func(ctx context.Context, c Client) ([]string, []gosnmp.SnmpPDU, error) {
		vals, err := c.Get(ctx, oids)
		if err != nil {
			return nil, nil, err
		}
		for _, v := range vals {
			if !present(v) {
				return nil, nil, nil
			}
		}
		return oids, vals, nil
	}
}

// ciscoMemPools reads used and free of every pool: the pools walked from
// the used column, then used and free fetched per pool.
func ciscoMemPools(ctx context.Context, c Client) ([]string, []gosnmp.SnmpPDU, error) {
	return rowsThenGet(ctx, c, oidCiscoMemPoolUsed, func(gosnmp.SnmpPDU) bool { return true },
		oidCiscoMemPoolUsed, oidCiscoMemPoolFree)
}

// hrStorageRAM reads allocation units, size and used of the rows of type
// hrStorageRam.
func hrStorageRAM(ctx context.Context, c Client) ([]string, []gosnmp.SnmpPDU, error) {
	isRAM := func(p gosnmp.SnmpPDU) bool {
		s, _ := p.Value.(string)
		return p.Type == gosnmp.ObjectIdentifier && "."+strings.TrimPrefix(s, ".") == oidHrStorageRAM
	}
	return rowsThenGet(ctx, c, oidHrStorageType, isRAM, oidHrStorageUnits, oidHrStorageSize, oidHrStorageUsed)
}

// rowsThenGet walks column, keeps the rows accepted by keep, and GETs the
// given columns of those rows, row by row.
func rowsThenGet(ctx context.Context, c Client, column string, keep func(gosnmp.SnmpPDU) bool, columns ...string) ([]string, []gosnmp.SnmpPDU, error) {
	rows, err := c.BulkWalk(ctx, column)
	if err != nil {
		return nil, nil, err
	}
	var oids []string
	for _, r := range rows {
		if !keep(r) || !strings.HasPrefix(r.Name, column+".") {
			continue
		}
		index := strings.TrimPrefix(r.Name, column)
		for _, col := range columns {
			oids = append(oids, col+index)
		}
	}
	if len(oids) == 0 {
		return nil, nil, nil
	}
	vals, err := c.Get(ctx, oids)
	if err != nil {
		return nil, nil, err
	}
	return oids, vals, nil
}

func average(vals []gosnmp.SnmpPDU) (float64, bool) {
	if len(vals) == 0 {
		return 0, false
	}
	var sum float64
	for _, v := range vals {
		f, ok := number(v)
		if !ok {
			return 0, false
		}
		sum += f
	}
	return sum / float64(len(vals)), true
}

func idleToBusy(vals []gosnmp.SnmpPDU) (float64, bool) {
	idle, ok := number(vals[0])
	return 100 - idle, ok
}

// usedOfUsedPlusFree sums (used, free) pairs over all pools.
func usedOfUsedPlusFree(vals []gosnmp.SnmpPDU) (float64, bool) {
	var used, total float64
	for i := 0; i+1 < len(vals); i += 2 {
		u, ok1 := number(vals[i])
		f, ok2 := number(vals[i+1])
		if !ok1 || !ok2 {
			return 0, false
		}
		used, total = used+u, total+u+f
	}
	if total <= 0 {
		return 0, false
	}
	return 100 * used / total, true
}

// hrStorageUsedPercent sums (units, size, used) triples over all RAM rows;
// units differ between rows on some agents, hence bytes.
func hrStorageUsedPercent(vals []gosnmp.SnmpPDU) (float64, bool) {
	var used, size float64
	for i := 0; i+2 < len(vals); i += 3 {
		units, ok1 := number(vals[i])
		s, ok2 := number(vals[i+1])
		u, ok3 := number(vals[i+2])
		if !ok1 || !ok2 || !ok3 {
			return 0, false
		}
		size, used = size+s*units, used+u*units
	}
	if size <= 0 {
		return 0, false
	}
	return 100 * used / size, true
}

func ucdMemUsedPercent(vals []gosnmp.SnmpPDU) (float64, bool) {
	total, ok1 := number(vals[0])
	avail, ok2 := number(vals[1])
	if !ok1 || !ok2 || total <= 0 {
		return 0, false
	}
	return 100 * (total - avail) / total, true
}

// present reports whether the agent has the object.
func present(p gosnmp.SnmpPDU) bool {
	switch p.Type {
	case gosnmp.NoSuchObject, gosnmp.NoSuchInstance, gosnmp.EndOfMibView, gosnmp.Null, gosnmp.UnknownType:
		return false
	}
	return true
}

// number is the value of an integer, counter, gauge, timeticks or opaque
// float object, or of a string holding a decimal number (DisplayString
// readings some vendors use).
func number(p gosnmp.SnmpPDU) (float64, bool) {
	switch p.Type {
	case gosnmp.Integer, gosnmp.Counter32, gosnmp.Gauge32, gosnmp.TimeTicks, gosnmp.Counter64, gosnmp.Uinteger32:
		f, _ := new(big.Float).SetInt(gosnmp.ToBigInt(p.Value)).Float64() // Counter64 exceeds int64
		return f, true
	case gosnmp.OpaqueFloat:
		f, ok := p.Value.(float32)
		return float64(f), ok && !math.IsNaN(float64(f))
	case gosnmp.OpaqueDouble:
		f, ok := p.Value.(float64)
		return f, ok && !math.IsNaN(f)
	case gosnmp.OctetString:
		b, _ := p.Value.([]byte)
		f, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	return 0, false
}

// customValue is a custom OID's value for the rules: float64 when numeric,
// else a string (hex for binary octet strings such as MAC addresses).
func customValue(p gosnmp.SnmpPDU) (any, bool) {
	if !present(p) {
		return nil, false
	}
	if f, ok := number(p); ok {
		return f, true
	}
	switch v := p.Value.(type) {
	case []byte:
		if utf8.Valid(v) {
			return string(v), true
		}
		return hexColon(v), true
	case string:
		return v, true
	}
	return nil, false
}

func hexColon(b []byte) string {
	parts := make([]string, len(b))
	for i := range b {
		parts[i] = hex.EncodeToString(b[i : i+1])
	}
	return strings.Join(parts, ":")
}

func names(pdus []gosnmp.SnmpPDU) []string {
	out := make([]string, len(pdus))
	for i, p := range pdus {
		out[i] = p.Name
	}
	return out
}

// unavailable reports a discovery error that only means "not this source":
// an agent refusing a subtree with an error-status other than
// authorizationError, which is an access problem worth reporting.
func unavailable(err error) bool {
	var status *StatusError
	return errors.As(err, &status) && status.Status != gosnmp.AuthorizationError
}
