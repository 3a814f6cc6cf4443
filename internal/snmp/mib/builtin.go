package mib

import "strconv"

type entry struct{ name, oid string }

// columns expands table columns: base.N → MIB::name for each (N, name).
func columns(mib, base string, cols map[int]string) []entry {
	out := make([]entry, 0, len(cols))
	for n, name := range cols {
		out = append(out, entry{mib + "::" + name, base + "." + strconv.Itoa(n)})
	}
	return out
}

func concat(groups ...[]entry) []entry {
	var out []entry
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// builtin holds the OIDs of the standard and Cisco MIBs that traps commonly
// carry. Numbers come from the MIB modules (RFC 3418, 2863, 6933, 4273,
// 1657, 4750, Cisco's CISCO-*-MIB files).
var builtin = concat(
	// SNMPv2-MIB (RFC 3418): system group and trap objects.
	columns("SNMPv2-MIB", "1.3.6.1.2.1.1", map[int]string{
		1: "sysDescr", 2: "sysObjectID", 3: "sysUpTime", 4: "sysContact",
		5: "sysName", 6: "sysLocation", 7: "sysServices", 8: "sysORLastChange",
	}),
	[]entry{
		{"SNMPv2-MIB::snmpTrapOID", "1.3.6.1.6.3.1.1.4.1"},
		{"SNMPv2-MIB::snmpTrapEnterprise", "1.3.6.1.6.3.1.1.4.3"},
		{"SNMPv2-MIB::coldStart", "1.3.6.1.6.3.1.1.5.1"},
		{"SNMPv2-MIB::warmStart", "1.3.6.1.6.3.1.1.5.2"},
		{"SNMPv2-MIB::authenticationFailure", "1.3.6.1.6.3.1.1.5.5"},
		// RFC 3584 maps SNMPv1 generic trap egpNeighborLoss(5) here.
		{"RFC1213-MIB::egpNeighborLoss", "1.3.6.1.6.3.1.1.5.6"},
		// SNMP-COMMUNITY-MIB (RFC 3584): added by proxies translating v1.
		{"SNMP-COMMUNITY-MIB::snmpTrapAddress", "1.3.6.1.6.3.18.1.3"},
		{"SNMP-COMMUNITY-MIB::snmpTrapCommunity", "1.3.6.1.6.3.18.1.4"},
		// IF-MIB (RFC 2863) notifications live under snmpTraps.
		{"IF-MIB::linkDown", "1.3.6.1.6.3.1.1.5.3"},
		{"IF-MIB::linkUp", "1.3.6.1.6.3.1.1.5.4"},
		{"IF-MIB::ifNumber", "1.3.6.1.2.1.2.1"},
	},
	columns("IF-MIB", "1.3.6.1.2.1.2.2.1", map[int]string{
		1: "ifIndex", 2: "ifDescr", 3: "ifType", 4: "ifMtu", 5: "ifSpeed",
		6: "ifPhysAddress", 7: "ifAdminStatus", 8: "ifOperStatus", 9: "ifLastChange",
		10: "ifInOctets", 11: "ifInUcastPkts", 13: "ifInDiscards", 14: "ifInErrors",
		15: "ifInUnknownProtos", 16: "ifOutOctets", 17: "ifOutUcastPkts",
		19: "ifOutDiscards", 20: "ifOutErrors",
	}),
	columns("IF-MIB", "1.3.6.1.2.1.31.1.1.1", map[int]string{
		1: "ifName", 6: "ifHCInOctets", 10: "ifHCOutOctets",
		14: "ifLinkUpDownTrapEnable", 15: "ifHighSpeed", 17: "ifConnectorPresent",
		18: "ifAlias",
	}),
	// OLD-CISCO-INTERFACES-MIB: the reason Cisco adds to linkDown/linkUp.
	[]entry{{"OLD-CISCO-INTERFACES-MIB::locIfReason", "1.3.6.1.4.1.9.2.2.1.1.20"}},

	// ENTITY-MIB (RFC 6933).
	columns("ENTITY-MIB", "1.3.6.1.2.1.47.1.1.1.1", map[int]string{
		1: "entPhysicalIndex", 2: "entPhysicalDescr", 3: "entPhysicalVendorType",
		4: "entPhysicalContainedIn", 5: "entPhysicalClass", 6: "entPhysicalParentRelPos",
		7: "entPhysicalName", 8: "entPhysicalHardwareRev", 9: "entPhysicalFirmwareRev",
		10: "entPhysicalSoftwareRev", 11: "entPhysicalSerialNum", 12: "entPhysicalMfgName",
		13: "entPhysicalModelName", 14: "entPhysicalAlias", 15: "entPhysicalAssetID",
		16: "entPhysicalIsFRU",
	}),
	[]entry{
		{"ENTITY-MIB::entLastChangeTime", "1.3.6.1.2.1.47.1.4.1"},
		{"ENTITY-MIB::entConfigChange", "1.3.6.1.2.1.47.2.0.1"},
	},

	// BGP4-MIB: RFC 4273 notifications, the RFC 1657 ones they replace,
	// and the peer table.
	[]entry{
		{"BGP4-MIB::bgpVersion", "1.3.6.1.2.1.15.1"},
		{"BGP4-MIB::bgpLocalAs", "1.3.6.1.2.1.15.2"},
		{"BGP4-MIB::bgpIdentifier", "1.3.6.1.2.1.15.4"},
		{"BGP4-MIB::bgpEstablishedNotification", "1.3.6.1.2.1.15.0.1"},
		{"BGP4-MIB::bgpBackwardTransNotification", "1.3.6.1.2.1.15.0.2"},
		{"BGP4-MIB::bgpEstablished", "1.3.6.1.2.1.15.7.1"},
		{"BGP4-MIB::bgpBackwardTransition", "1.3.6.1.2.1.15.7.2"},
	},
	columns("BGP4-MIB", "1.3.6.1.2.1.15.3.1", map[int]string{
		1: "bgpPeerIdentifier", 2: "bgpPeerState", 3: "bgpPeerAdminStatus",
		4: "bgpPeerNegotiatedVersion", 5: "bgpPeerLocalAddr", 6: "bgpPeerLocalPort",
		7: "bgpPeerRemoteAddr", 8: "bgpPeerRemotePort", 9: "bgpPeerRemoteAs",
		10: "bgpPeerInUpdates", 11: "bgpPeerOutUpdates", 12: "bgpPeerInTotalMessages",
		13: "bgpPeerOutTotalMessages", 14: "bgpPeerLastError",
		15: "bgpPeerFsmEstablishedTransitions", 16: "bgpPeerFsmEstablishedTime",
	}),

	// OSPF-MIB objects (RFC 4750) and OSPF-TRAP-MIB notifications.
	[]entry{
		{"OSPF-MIB::ospfRouterId", "1.3.6.1.2.1.14.1.1"},
		{"OSPF-MIB::ospfAdminStat", "1.3.6.1.2.1.14.1.2"},
	},
	columns("OSPF-MIB", "1.3.6.1.2.1.14.7.1", map[int]string{
		1: "ospfIfIpAddress", 2: "ospfAddressLessIf", 3: "ospfIfAreaId", 4: "ospfIfType",
		5: "ospfIfAdminStat", 6: "ospfIfRtrPriority", 12: "ospfIfState",
	}),
	columns("OSPF-MIB", "1.3.6.1.2.1.14.10.1", map[int]string{
		1: "ospfNbrIpAddr", 2: "ospfNbrAddressLessIndex", 3: "ospfNbrRtrId",
		4: "ospfNbrOptions", 5: "ospfNbrPriority", 6: "ospfNbrState", 7: "ospfNbrEvents",
		8: "ospfNbrLsRetransQLen", 9: "ospfNbmaNbrStatus", 10: "ospfNbmaNbrPermanence",
		11: "ospfNbrHelloSuppressed",
	}),
	columns("OSPF-MIB", "1.3.6.1.2.1.14.11.1", map[int]string{
		1: "ospfVirtNbrArea", 2: "ospfVirtNbrRtrId", 3: "ospfVirtNbrIpAddr", 5: "ospfVirtNbrState",
	}),
	columns("OSPF-TRAP-MIB", "1.3.6.1.2.1.14.16.1", map[int]string{
		1: "ospfSetTrap", 2: "ospfConfigErrorType", 3: "ospfPacketType", 4: "ospfPacketSrc",
	}),
	columns("OSPF-TRAP-MIB", "1.3.6.1.2.1.14.16.2", map[int]string{
		1: "ospfVirtIfStateChange", 2: "ospfNbrStateChange", 3: "ospfVirtNbrStateChange",
		4: "ospfIfConfigError", 5: "ospfVirtIfConfigError", 6: "ospfIfAuthFailure",
		7: "ospfVirtIfAuthFailure", 8: "ospfIfRxBadPacket", 9: "ospfVirtIfRxBadPacket",
		10: "ospfTxRetransmit", 11: "ospfVirtIfTxRetransmit", 12: "ospfOriginateLsa",
		13: "ospfMaxAgeLsa", 14: "ospfLsdbOverflow", 15: "ospfLsdbApproachingOverflow",
		16: "ospfIfStateChange", 17: "ospfNssaTranslatorStatusChange",
		18: "ospfRestartStatusChange", 19: "ospfNbrRestartHelperStatusChange",
		20: "ospfVirtNbrRestartHelperStatusChange",
	}),

	// CISCO-CONFIG-MAN-MIB.
	[]entry{
		{"CISCO-CONFIG-MAN-MIB::ccmHistoryRunningLastChanged", "1.3.6.1.4.1.9.9.43.1.1.1"},
		{"CISCO-CONFIG-MAN-MIB::ccmHistoryRunningLastSaved", "1.3.6.1.4.1.9.9.43.1.1.2"},
		{"CISCO-CONFIG-MAN-MIB::ccmHistoryStartupLastChanged", "1.3.6.1.4.1.9.9.43.1.1.3"},
		{"CISCO-CONFIG-MAN-MIB::ciscoConfigManEvent", "1.3.6.1.4.1.9.9.43.2.0.1"},
		{"CISCO-CONFIG-MAN-MIB::ccmCLIRunningConfigChanged", "1.3.6.1.4.1.9.9.43.2.0.2"},
	},
	columns("CISCO-CONFIG-MAN-MIB", "1.3.6.1.4.1.9.9.43.1.1.6.1", map[int]string{
		3: "ccmHistoryEventCommandSource", 4: "ccmHistoryEventConfigSource",
		5: "ccmHistoryEventConfigDestination",
	}),

	// CISCO-PROCESS-MIB.
	columns("CISCO-PROCESS-MIB", "1.3.6.1.4.1.9.9.109.1.1.1.1", map[int]string{
		2: "cpmCPUTotalPhysicalIndex", 3: "cpmCPUTotal5sec", 4: "cpmCPUTotal1min",
		5: "cpmCPUTotal5min", 6: "cpmCPUTotal5secRev", 7: "cpmCPUTotal1minRev",
		8: "cpmCPUTotal5minRev",
	}),
	[]entry{
		{"CISCO-PROCESS-MIB::cpmCPURisingThreshold", "1.3.6.1.4.1.9.9.109.2.0.1"},
		{"CISCO-PROCESS-MIB::cpmCPUFallingThreshold", "1.3.6.1.4.1.9.9.109.2.0.2"},
	},

	// CISCO-ENVMON-MIB.
	columns("CISCO-ENVMON-MIB", "1.3.6.1.4.1.9.9.13.3.0", map[int]string{
		1: "ciscoEnvMonShutdownNotification", 2: "ciscoEnvMonVoltageNotification",
		3: "ciscoEnvMonTemperatureNotification", 4: "ciscoEnvMonFanNotification",
		5: "ciscoEnvMonRedundantSupplyNotification", 6: "ciscoEnvMonVoltStatusChangeNotif",
		7: "ciscoEnvMonTempStatusChangeNotif", 8: "ciscoEnvMonFanStatusChangeNotif",
		9: "ciscoEnvMonSuppStatusChangeNotif",
	}),
	columns("CISCO-ENVMON-MIB", "1.3.6.1.4.1.9.9.13.1.2.1", map[int]string{
		2: "ciscoEnvMonVoltageStatusDescr", 3: "ciscoEnvMonVoltageStatusValue",
		7: "ciscoEnvMonVoltageState",
	}),
	columns("CISCO-ENVMON-MIB", "1.3.6.1.4.1.9.9.13.1.3.1", map[int]string{
		2: "ciscoEnvMonTemperatureStatusDescr", 3: "ciscoEnvMonTemperatureStatusValue",
		4: "ciscoEnvMonTemperatureThreshold", 6: "ciscoEnvMonTemperatureState",
	}),
	columns("CISCO-ENVMON-MIB", "1.3.6.1.4.1.9.9.13.1.4.1", map[int]string{
		2: "ciscoEnvMonFanStatusDescr", 3: "ciscoEnvMonFanState",
	}),
	columns("CISCO-ENVMON-MIB", "1.3.6.1.4.1.9.9.13.1.5.1", map[int]string{
		2: "ciscoEnvMonSupplyStatusDescr", 3: "ciscoEnvMonSupplyState", 4: "ciscoEnvMonSupplySource",
	}),

	// CISCO-SYSLOG-MIB: syslog messages sent as traps.
	[]entry{{"CISCO-SYSLOG-MIB::clogMessageGenerated", "1.3.6.1.4.1.9.9.41.2.0.1"}},
	columns("CISCO-SYSLOG-MIB", "1.3.6.1.4.1.9.9.41.1.2.3.1", map[int]string{
		2: "clogHistFacility", 3: "clogHistSeverity", 4: "clogHistMsgName",
		5: "clogHistMsgText", 6: "clogHistTimestamp",
	}),

	// CISCO-BGP4-MIB.
	columns("CISCO-BGP4-MIB", "1.3.6.1.4.1.9.9.187.0", map[int]string{
		1: "cbgpFsmStateChange", 2: "cbgpBackwardTransition",
		3: "cbgpPrefixThresholdExceeded", 4: "cbgpPrefixThresholdClear",
	}),
)
