//go:build !linux

package netsnmp

import "syscall"

func procAttr() *syscall.SysProcAttr { return nil }
