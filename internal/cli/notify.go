package cli

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cutover/cutover/internal/core"
)

// newNotifyCmd returns `cutover notify`: subscriptions of an app's events.
func newNotifyCmd(c *control) *cobra.Command {
	cmd := &cobra.Command{Use: "notify", Short: "Send an app's events to webhooks, Slack and email (subscriptions, tests, delivery log)"}
	var on, email []string
	var webhook, slack string
	add := &cobra.Command{
		Use:   "add APP --on EVENTS (--webhook URL | --slack URL | --email ADDR[,ADDR])",
		Short: "Subscribe a webhook, Slack URL or email addresses to some of an app's events; prints a webhook's signing secret once",
		Long: `Subscribes a URL to APP's events of the kinds in --on (comma-separated, or all):

  deploy.started deploy.succeeded deploy.failed deploy.rolled_back rollback
  build.failed build.fixed override env.locked env.unlocked approval
  approval.requested

A webhook receives the event as JSON, signed: X-Cutover-Signature is
sha256=HEX, the HMAC-SHA256 of "TIMESTAMP.BODY" with the secret printed here
(once), and X-Cutover-Timestamp is TIMESTAMP. A Slack URL (an incoming
webhook) receives {"text", "blocks"}. The URL may not resolve to loopback,
link-local or private addresses unless the server runs with
--allow-private-notify. Email goes as plain text through the SMTP relay the
server was started with (--smtp-addr, --smtp-from), to at most 20
addresses. Needs the admin role.`,
		Example: "  cutover notify add hello --on rollback,deploy.failed --webhook https://ci.example.com/cutover\n" +
			"  cutover notify add hello --on all --slack https://hooks.slack.com/services/T000/B000/XXXX\n" +
			"  cutover notify add hello --on deploy.failed,rollback --email ops@example.com,ann@example.com",
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			channel, url, given := core.ChannelWebhook, webhook, 0
			for _, v := range []string{webhook, slack, strings.Join(email, ",")} {
				if v != "" {
					given++
				}
			}
			switch {
			case given > 1:
				return usagef("give one of --webhook, --slack and --email, not several")
			case slack != "":
				channel, url = core.ChannelSlack, slack
			case len(email) > 0:
				channel, url = core.ChannelEmail, "mailto:"+strings.Join(email, ",")
			case webhook == "":
				return usagef("give --webhook URL, --slack URL or --email ADDR[,ADDR]")
			}
			if len(on) == 0 {
				return usagef("--on is required: the event kinds to send, or all")
			}
			cl, err := c.forApp(args[0])
			if err != nil {
				return err
			}
			sub, err := cl.AddSubscription(cmd.Context(), args[0], on, channel, url)
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), sub)
			}
			if sub.Secret == "" {
				printf(cmd, "subscription %s added: %s of %s to %s %s\n", sub.ID, strings.Join(sub.Events, ","), sub.App, sub.Channel, strings.TrimPrefix(sub.URL, "mailto:"))
				return nil
			}
			eprintf(cmd, "subscription %s added: %s of %s to %s; its signing secret is shown once:\n", sub.ID, strings.Join(sub.Events, ","), sub.App, sub.Channel)
			printf(cmd, "%s\n", sub.Secret)
			return nil
		},
	}
	add.Flags().StringSliceVar(&on, "on", nil, "event kinds (comma-separated), or all")
	add.Flags().StringVar(&webhook, "webhook", "", "URL receiving signed JSON events")
	add.Flags().StringVar(&slack, "slack", "", "Slack-compatible incoming-webhook URL")
	add.Flags().StringSliceVar(&email, "email", nil, "email addresses (comma-separated), sent through the server's SMTP relay")

	list := &cobra.Command{
		Use: "list APP", Short: "List an app's subscriptions", Args: exactArgs(1),
		Example: "  cutover notify list hello\n  cutover notify list hello --output json",
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.forApp(args[0])
			if err != nil {
				return err
			}
			subs, err := cl.Subscriptions(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), subs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tCHANNEL\tEVENTS\tURL\tBY")
			for _, s := range subs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.Channel, strings.Join(s.Events, ","), s.URL, s.CreatedBy)
			}
			return tw.Flush()
		},
	}
	remove := &cobra.Command{
		Use: "remove ID", Short: "Remove a subscription (its delivery log stays)", Args: exactArgs(1),
		Example: "  cutover notify remove ntf_0a1b2c3d4e5f",
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			if err := cl.RemoveSubscription(cmd.Context(), args[0]); err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), map[string]string{"removed": args[0]})
			}
			printf(cmd, "subscription %s removed\n", args[0])
			return nil
		},
	}
	test := &cobra.Command{
		Use: "test ID", Short: "Send a test event to a subscription once and say how it went", Args: exactArgs(1),
		Example: "  cutover notify test ntf_0a1b2c3d4e5f",
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.client()
			if err != nil {
				return err
			}
			d, err := cl.TestSubscription(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if c.json() {
				if err := printJSON(cmd.OutOrStdout(), d); err != nil {
					return err
				}
			} else if d.Status == core.DeliveryOK {
				printf(cmd, "test event delivered to %s\n", d.Subscription)
			}
			if d.Status != core.DeliveryOK {
				return errors.New("test event not delivered: " + d.Error)
			}
			return nil
		},
	}
	var limit int
	logCmd := &cobra.Command{
		Use: "log APP", Short: "Show an app's newest delivery attempts", Args: exactArgs(1),
		Example: "  cutover notify log hello\n  cutover notify log hello --limit 200 --output json",
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.forApp(args[0])
			if err != nil {
				return err
			}
			ds, err := cl.NotifyLog(cmd.Context(), args[0], limit)
			if err != nil {
				return err
			}
			if c.json() {
				return printJSON(cmd.OutOrStdout(), ds)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tSUBSCRIPTION\tEVENT\tKIND\tATTEMPT\tSTATUS\tERROR")
			for _, d := range ds {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\n", d.At.Local().Format(time.DateTime), d.Subscription, d.EventID, d.Kind, d.Attempt, d.Status, d.Error)
			}
			return tw.Flush()
		},
	}
	logCmd.Flags().IntVar(&limit, "limit", 0, "attempts to show (default: the server's, 50)")
	cmd.AddCommand(add, list, remove, test, logCmd)
	return cmd
}
