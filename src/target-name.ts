import { z } from 'zod';

/** Target names reach file paths, job ids and pg tool arguments: keep them to a safe alphabet. */
export const TargetName = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,47}$/, 'a target name is 1–48 characters: lowercase letters, digits, - and _, starting with a letter');
