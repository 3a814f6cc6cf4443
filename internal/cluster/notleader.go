package cluster

import "fmt"

// NotLeader is the error of a call that needs the leader's in-memory state
// (a dead-letter replay goes through the leader's outbox) made on another
// node: the API answers 409 and names the leader to ask.
type NotLeader struct {
	// Leader is the node that leads, "" when none is known now.
	Leader string
}

func (e *NotLeader) Error() string {
	if e.Leader == "" {
		return "this node does not lead the cluster and no leader is known now: try again in a few seconds"
	}
	return fmt.Sprintf("this node does not lead the cluster: ask the leader, %s", e.Leader)
}
