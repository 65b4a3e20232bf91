/**
 * The `calicoctl profile` help text, verbatim from the calicoctl documentation (seed 000),
 * including its irregular spacing (one usage line ends in two spaces), plus the `icmpv6` branch
 * of `rule add` that the documentation left out and calicoctl v0.20.0 prints (as `rule remove`). Kept as a list of lines so
 * no editor or formatter can strip that whitespace. `--help` prints all of it; a syntax error
 * prints only the Usage section (as docopt did).
 */

export const PROFILE_HELP_LINES: readonly string[] = [
  "Usage:",
  "  calicoctl profile show [--detailed]",
  "  calicoctl profile add <PROFILE>",
  "  calicoctl profile remove <PROFILE> [--no-check]",
  "  calicoctl profile <PROFILE> tag show",
  "  calicoctl profile <PROFILE> tag (add|remove) <TAG>",
  "  calicoctl profile <PROFILE> rule add (inbound|outbound) [--at=<POSITION>]",
  "    (allow|deny) [(",
  "      (tcp|udp) [(from [(ports <SRCPORTS>)] [(tag <SRCTAG>)] [(cidr <SRCCIDR>)])]",
  "                [(to   [(ports <DSTPORTS>)] [(tag <DSTTAG>)] [(cidr <DSTCIDR>)])] |",
  "      icmp [(type <ICMPTYPE> [(code <ICMPCODE>)])]",
  "           [(from [(tag <SRCTAG>)] [(cidr <SRCCIDR>)])]",
  "           [(to   [(tag <DSTTAG>)] [(cidr <DSTCIDR>)])] |",
  "      icmpv6 [(type <ICMPTYPE> [(code <ICMPCODE>)])]",
  "             [(from [(tag <SRCTAG>)] [(cidr <SRCCIDR>)])]",
  "             [(to   [(tag <DSTTAG>)] [(cidr <DSTCIDR>)])] |",
  "      [(from [(tag <SRCTAG>)] [(cidr <SRCCIDR>)])]  ",
  "      [(to   [(tag <DSTTAG>)] [(cidr <DSTCIDR>)])]",
  "    )]",
  "  calicoctl profile <PROFILE> rule remove (inbound|outbound) (--at=<POSITION>|",
  "    (allow|deny) [(",
  "      (tcp|udp) [(from [(ports <SRCPORTS>)] [(tag <SRCTAG>)] [(cidr <SRCCIDR>)])]",
  "                [(to   [(ports <DSTPORTS>)] [(tag <DSTTAG>)] [(cidr <DSTCIDR>)])] |",
  "      icmp [(type <ICMPTYPE> [(code <ICMPCODE>)])]",
  "           [(from [(tag <SRCTAG>)] [(cidr <SRCCIDR>)])]",
  "           [(to   [(tag <DSTTAG>)] [(cidr <DSTCIDR>)])] |",
  "      icmpv6 [(type <ICMPTYPE> [(code <ICMPCODE>)])]",
  "             [(from [(tag <SRCTAG>)] [(cidr <SRCCIDR>)])]",
  "             [(to   [(tag <DSTTAG>)] [(cidr <DSTCIDR>)])] |",
  "      [(from [(tag <SRCTAG>)] [(cidr <SRCCIDR>)])]",
  "      [(to   [(tag <DSTTAG>)] [(cidr <DSTCIDR>)])]",
  "    )])",
  "  calicoctl profile <PROFILE> rule show",
  "  calicoctl profile <PROFILE> rule json",
  "  calicoctl profile <PROFILE> rule update",
  "",
  "Description:",
  "  Modify available profiles and configure rules or tags.",
  "",
  "Options:",
  "  --detailed        Show additional information.",
  "  --no-check        Remove a profile without checking if there are endpoints",
  "                    associated with the profile.",
  "  --at=<POSITION>   Specify the position in the chain where the rule should",
  "                    be placed. Default: append at end.",
  "",
  "Examples:",
  "  Add and set up a rule to prevent all inbound traffic except pings from the 192.168/16 subnet",
  "  $ calicoctl profile add only-local-pings",
  "  $ calicoctl profile only-local-pings rule add inbound deny icmp",
  "  $ calicoctl profile only-local-pings rule add inbound --at=0 allow from 192.168.0.0/16",
];

export const PROFILE_HELP = PROFILE_HELP_LINES.join('\n');

/** The `Usage:` section alone (up to the first blank line). */
export const PROFILE_USAGE = PROFILE_HELP_LINES.slice(0, PROFILE_HELP_LINES.indexOf('')).join('\n');
