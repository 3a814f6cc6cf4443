package netsnmp

import "syscall"

// procAttr makes the kernel kill snmpd when the test or benchmark process
// dies without stopping it.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
