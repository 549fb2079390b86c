package testkit

import (
	"bufio"
	"fmt"
	"os"
	"testing"
	"time"
)

const echoChildEnv = "TESTKIT_ECHO_CHILD"

// TestEchoChild is TestStartChild's child: it echoes its stdin until it
// closes. It does nothing in a normal test run.
func TestEchoChild(*testing.T) {
	if os.Getenv(echoChildEnv) == "" {
		return
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		fmt.Println("echo", sc.Text())
	}
	os.Exit(0)
}

// TestStartChild: a child answers on its stdout, and is gone, exited
// cleanly, once the test that started it has ended.
func TestStartChild(t *testing.T) {
	var c *Child
	t.Run("child", func(t *testing.T) {
		c = StartChild(t, "^TestEchoChild$", echoChildEnv+"=1")
		if err := c.Send("hi"); err != nil {
			t.Fatal(err)
		}
		if line, err := c.Line(30 * time.Second); err != nil || line != "echo hi" {
			t.Fatalf("child answered %q, %v; want \"echo hi\"", line, err)
		}
	})
	select {
	case <-c.Exited():
	default:
		t.Fatalf("child %d still running after its test ended", c.Pid())
	}
	if err := c.Err(); err != nil {
		t.Errorf("child: %v", err)
	}
}
