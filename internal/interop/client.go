package interop

import (
	"fmt"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
)

// Dial is a started gortsplib client of url over TCP, and url parsed. The
// caller closes it.
func Dial(url string) (*gortsplib.Client, *base.URL, error) {
	u, err := base.ParseURL(url)
	if err != nil {
		return nil, nil, err
	}
	tcp := gortsplib.TransportTCP
	c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tcp}
	if err := c.Start2(); err != nil {
		return nil, nil, err
	}
	return c, u, nil
}

// SetUp is a gortsplib player of url over TCP: started, DESCRIBE answered
// and every track set up, ready for its packet callbacks and PLAY. The
// caller closes it.
func SetUp(url string) (*gortsplib.Client, *description.Session, error) {
	c, u, err := Dial(url)
	if err != nil {
		return nil, nil, err
	}
	desc, _, err := c.Describe(u)
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("describe %s: %w", url, err)
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("setup %s: %w", url, err)
	}
	return c, desc, nil
}
