/**
 * `calicoctl profile …`: profiles, their tags and their rules (reference §4, seed 000).
 *
 * Output is byte-for-byte calicoctl's. Errors go to stderr with exit status 1 (including
 * `Profile X not found.` of rule and tag commands, which Python calicoctl printed on stdout),
 * except where scripts written for calicoctl 0.x depend on the original: the argument checks
 * print on stdout (exit 1), and a profile that already exists (`add`), is missing or in use
 * (`remove`), and `rule remove --at` past the end are reported on stdout with exit 0, nothing
 * changed. Every change is one read-modify-write transaction in CalicoStore, so concurrent
 * invocations never lose updates.
 */
import { endpointProfileIds, keepMemberOrder, ProfileExistsError, ProfileInUseError, ProfileNotFoundError } from '../datastore/index.js';
import { formatIssues, parseJson, rulesSchema, type Rule, type Rules } from '../model/index.js';
import { CliError, splitOptions, UsageError, type CliContext } from './cli-context.js';
import { renderTable, sortRows } from './pretty-table.js';
import { PROFILE_HELP, PROFILE_USAGE } from './profile-help.js';
import { buildRule, checkArguments, parseRuleSpec } from './rule-spec.js';
import { asCalicoctlLoaded, formatRulesJson, formatRulesListing, rulesEqual } from './rule-text.js';

type Direction = 'inbound_rules' | 'outbound_rules';

function usage(): never {
  throw new UsageError(PROFILE_USAGE);
}

function checked(input: Parameters<typeof checkArguments>[0]): void {
  const messages = checkArguments(input);
  if (messages) throw new CliError(messages.replace(/\n$/, ''), { stdout: true });
}

function parsePosition(text: string): number {
  if (!/^[+-]?\d+$/.test(text)) throw new CliError(`Invalid position ${JSON.stringify(text)}: expected an integer.`);
  return Number(text);
}

async function showProfiles(ctx: CliContext, detailed: boolean): Promise<void> {
  const store = ctx.store();
  const names = await store.listProfiles();
  if (!detailed) {
    ctx.out(`${renderTable(['Name'], names.map((n) => [n]))}\n`);
    return;
  }
  const endpoints = await store.listEndpoints();
  const rows: string[][] = [];
  for (const name of names) {
    const users = endpoints.filter((e) => endpointProfileIds(e).includes(name));
    if (users.length === 0) rows.push([name, 'None', 'None', 'None', 'None', 'None']);
    for (const e of users) {
      const state = e.endpoint?.state ?? (e.raw as { state?: unknown } | undefined)?.state;
      rows.push([name, e.ref.host, e.ref.orchestrator, e.ref.workload, e.ref.endpointId, String(state ?? 'None')]);
    }
  }
  const headers = ['Name', 'Host', 'Orchestrator ID', 'Workload ID', 'Endpoint ID', 'State'];
  ctx.out(`${renderTable(headers, sortRows(rows))}\n`);
}

async function removeProfile(ctx: CliContext, name: string, checkEndpoints: boolean): Promise<void> {
  try {
    await ctx.store().removeProfile(name, { checkEndpoints });
  } catch (e) {
    if (e instanceof ProfileInUseError) {
      ctx.out("Cannot remove profile - profile in use by endpoint(s).\nUse the '--no-check' flag to remove the profile anyway.\n");
      return;
    }
    if (e instanceof ProfileNotFoundError) {
      ctx.out(`${e.message}\n`);
      return;
    }
    throw e;
  }
  ctx.out(`Deleted profile ${name}\n`);
}

async function addProfile(ctx: CliContext, name: string): Promise<void> {
  try {
    await ctx.store().createProfile(name);
  } catch (e) {
    if (e instanceof ProfileExistsError) {
      ctx.out(`${e.message}\n`);
      return;
    }
    throw e;
  }
  ctx.out(`Created profile ${name}\n`);
}

async function tagCommand(ctx: CliContext, profile: string, words: string[]): Promise<void> {
  const [verb, tag, ...rest] = words;
  if (verb === 'show' && tag === undefined) {
    const { tags } = await ctx.store().getProfile(profile);
    ctx.out(tags.map((t) => `${t}\n`).join(''));
    return;
  }
  if ((verb !== 'add' && verb !== 'remove') || tag === undefined || rest.length > 0) usage();
  checked({ profiles: [profile], tags: [tag] });
  if (verb === 'add') {
    await ctx.store().updateTags(profile, (tags) => (tags.includes(tag) ? undefined : [...tags, tag]));
    ctx.out(`Tag ${tag} added to profile ${profile}\n`);
  } else {
    await ctx.store().updateTags(profile, (tags) => {
      if (!tags.includes(tag)) throw new CliError(`Tag ${tag} is not on profile ${profile}`);
      return tags.filter((t) => t !== tag);
    });
    ctx.out(`Tag ${tag} removed from profile ${profile}\n`);
  }
}

async function ruleUpdate(ctx: CliContext, profile: string): Promise<void> {
  const store = ctx.store();
  if (!(await store.profileExists(profile))) throw new CliError(`Profile ${profile} not found.`);
  const json = parseJson(await ctx.readStdin());
  if (!json.ok) throw new CliError(`Invalid rules JSON: ${json.reason}`);
  const parsed = rulesSchema.safeParse(json.value);
  if (!parsed.success) throw new CliError(`Invalid rules: ${formatIssues(parsed.error)}`);
  if (parsed.data.id !== undefined && parsed.data.id !== profile) {
    throw new CliError(`Rules JSON "id"=${parsed.data.id} doesn't match profile name ${profile}.`);
  }
  const rules = asCalicoctlLoaded(keepMemberOrder(json.value, parsed.data));
  await store.updateRules(profile, () => rules, { replaceInvalid: true });
  ctx.out(`Successfully updated rules on profile ${profile}\n`);
}

async function ruleAddRemove(
  ctx: CliContext,
  profile: string,
  verb: 'add' | 'remove',
  words: string[],
  at: string | undefined,
): Promise<void> {
  const [directionWord, ...specWords] = words;
  if (directionWord !== 'inbound' && directionWord !== 'outbound') usage();
  const direction: Direction = directionWord === 'inbound' ? 'inbound_rules' : 'outbound_rules';
  const position = at === undefined ? undefined : parsePosition(at);

  if (verb === 'remove' && position !== undefined) {
    if (specWords.length > 0) usage();
    checked({ profiles: [profile] });
    let outOfRange = false;
    await ctx.store().updateRules(profile, (current) => {
      const loaded = asCalicoctlLoaded(current);
      const list = loaded[direction];
      outOfRange = position < 1 || position > list.length;
      if (outOfRange) return undefined;
      return { ...loaded, [direction]: list.filter((_, i) => i !== position - 1) };
    });
    if (outOfRange) ctx.out('Rule position out-of-range.\n');
    return;
  }

  const spec = parseRuleSpec(specWords, PROFILE_USAGE);
  checked({ profiles: [profile], spec });
  const rule = buildRule(spec);
  let duplicate = false;
  await ctx.store().updateRules(profile, (current) => {
    const loaded = asCalicoctlLoaded(current);
    const list: Rule[] = [...loaded[direction]];
    duplicate = false;
    if (verb === 'remove') {
      const index = list.findIndex((r) => rulesEqual(r, rule));
      if (index < 0) throw new CliError('Rule not found.');
      list.splice(index, 1);
    } else {
      // --at is 1-based; 0 also means the top (the documented example uses --at=0).
      const at1 = position ?? list.length + 1;
      if (at1 < 0 || at1 > list.length + 1) throw new CliError(`Position ${at1} is out-of-range.`);
      if (list.some((r) => rulesEqual(r, rule))) {
        duplicate = true;
        return undefined;
      }
      list.splice(Math.max(at1, 1) - 1, 0, rule);
    }
    const next: Rules = { ...loaded, [direction]: list };
    return next;
  });
  if (duplicate) ctx.out('Rule already present, skipping.\n');
}

export async function runProfile(args: string[], ctx: CliContext): Promise<void> {
  const options = splitOptions(args, { flags: ['--detailed', '--no-check', '--help', '-h'], valued: ['--at'] }, PROFILE_USAGE);
  if (options.flags.has('--help') || options.flags.has('-h')) {
    ctx.out(`${PROFILE_HELP}\n`);
    return;
  }
  const p = options.positionals;
  const allowOnly = (...names: string[]): void => {
    const used = [...options.flags, ...options.values.keys()];
    if (used.some((o) => !names.includes(o))) usage();
  };

  if (p[0] === 'show' && p.length === 1) {
    allowOnly('--detailed');
    await showProfiles(ctx, options.flags.has('--detailed'));
    return;
  }
  if ((p[0] === 'add' || p[0] === 'remove') && p.length === 2) {
    const name = p[1]!;
    allowOnly(...(p[0] === 'remove' ? ['--no-check'] : []));
    checked({ profiles: [name] });
    if (p[0] === 'add') {
      await addProfile(ctx, name);
    } else {
      await removeProfile(ctx, name, !options.flags.has('--no-check'));
    }
    return;
  }
  const [profile, group, verb, ...rest] = p;
  if (profile === undefined || verb === undefined) usage();
  if (group === 'tag') {
    allowOnly();
    checked({ profiles: [profile] });
    await tagCommand(ctx, profile, [verb, ...rest]);
    return;
  }
  if (group !== 'rule') usage();
  if (verb === 'add' || verb === 'remove') {
    allowOnly('--at');
    await ruleAddRemove(ctx, profile, verb, rest, options.values.get('--at'));
    return;
  }
  allowOnly();
  if (rest.length > 0) usage();
  checked({ profiles: [profile] });
  if (verb === 'show') {
    ctx.out(formatRulesListing((await ctx.store().getProfile(profile)).rules));
  } else if (verb === 'json') {
    ctx.out(formatRulesJson((await ctx.store().getProfile(profile)).rules));
  } else if (verb === 'update') {
    await ruleUpdate(ctx, profile);
  } else {
    usage();
  }
}
