/**
 * The merge policies by name: the write path (services/api/useCases/writeItem.ts), the merge of a
 * peer's version (mergeItem.ts) and the event decoder (shared/kafka/envelope.ts) find a policy's
 * rules here and nowhere else. Adding a policy: its name in mergePolicy.ts's `Policy`, its module in
 * this folder, its line below (the type makes the compiler ask for it).
 */
import { Policy } from '../mergePolicy.js';
import { COUNTER_RULES } from './counter.js';
import { FIELDS_RULES } from './fields.js';
import { LWW_RULES } from './lww.js';
import type { PolicyRules } from './policyRules.js';

export const POLICY_REGISTRY: { readonly [P in Policy]: PolicyRules } = {
  [Policy.Lww]: LWW_RULES,
  [Policy.Fields]: FIELDS_RULES,
  [Policy.Counter]: COUNTER_RULES,
};
