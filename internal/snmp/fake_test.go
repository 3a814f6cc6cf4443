package snmp

import (
	"log/slog"

	"github.com/gosnmp/gosnmp"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// A typical device of each family.
func ciscoSwitch() *FakeAgent {
	return NewFakeAgent().
		Set(oidSysUpTime, gosnmp.TimeTicks, uint32(123456)).
		Set(oidCiscoCPUTotal5minRev+".1", gosnmp.Gauge32, uint(30)).
		Set(oidCiscoCPUTotal5minRev+".2", gosnmp.Gauge32, uint(50)).
		Set(oidCiscoMemPoolUsed+".1", gosnmp.Gauge32, uint(300)).
		Set(oidCiscoMemPoolFree+".1", gosnmp.Gauge32, uint(700)).
		Set(oidCiscoMemPoolUsed+".2", gosnmp.Gauge32, uint(100)).
		Set(oidCiscoMemPoolFree+".2", gosnmp.Gauge32, uint(900))
}

func linuxHost() *FakeAgent {
	return NewFakeAgent().
		Set(oidSysUpTime, gosnmp.TimeTicks, uint32(5000)).
		Set(oidHrProcessorLoad+".196608", gosnmp.Integer, 10).
		Set(oidHrProcessorLoad+".196609", gosnmp.Integer, 20).
		Set(oidHrProcessorLoad+".196610", gosnmp.Integer, 60).
		Set(oidSsCPUIdle, gosnmp.Integer, 97).
		// Physical memory (RAM), virtual memory, and a fixed disk.
		Set(oidHrStorageType+".1", gosnmp.ObjectIdentifier, oidHrStorageRAM).
		Set(oidHrStorageUnits+".1", gosnmp.Integer, 1024).
		Set(oidHrStorageSize+".1", gosnmp.Integer, 1000).
		Set(oidHrStorageUsed+".1", gosnmp.Integer, 250).
		Set(oidHrStorageType+".3", gosnmp.ObjectIdentifier, ".1.3.6.1.2.1.25.2.1.3").
		Set(oidHrStorageUnits+".3", gosnmp.Integer, 1024).
		Set(oidHrStorageSize+".3", gosnmp.Integer, 3000).
		Set(oidHrStorageUsed+".3", gosnmp.Integer, 2900).
		Set(oidHrStorageType+".31", gosnmp.ObjectIdentifier, ".1.3.6.1.2.1.25.2.1.4").
		Set(oidHrStorageUnits+".31", gosnmp.Integer, 4096).
		Set(oidHrStorageSize+".31", gosnmp.Integer, 100).
		Set(oidHrStorageUsed+".31", gosnmp.Integer, 99).
		Set(oidMemTotalReal, gosnmp.Integer, 1000).
		Set(oidMemAvailReal, gosnmp.Integer, 400)
}

func ucdOnly() *FakeAgent {
	return NewFakeAgent().
		Set(oidSysUpTime, gosnmp.TimeTicks, uint32(77)).
		Set(oidSsCPUIdle, gosnmp.Integer, 85).
		Set(oidMemTotalReal, gosnmp.Integer, 1000).
		Set(oidMemAvailReal, gosnmp.Integer, 400)
}
