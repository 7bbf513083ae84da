/** What each doctor check reports: the check, how bad, what it saw, and the fix. */
export type FindingLevel = 'ok' | 'warn' | 'fail' | 'info';

export interface Finding {
  check: string;
  level: FindingLevel;
  detail: string;
  fix?: string;
}
