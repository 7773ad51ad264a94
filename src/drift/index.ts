// The drift room's door: what changed between two backups of a target, read from their manifests alone (pure).
export {
  DEFAULT_DRIFT,
  dataDrift,
  incomparable,
  previousBackup,
  type DataDrift,
  type DriftThresholds,
  type TableGrowth,
  type TableLoss,
} from './data-drift.ts';
export { compareDefinitions, schemaDrift, type SchemaChange, type SchemaDrift } from './schema-drift.ts';
export { SCREENFUL, capped, changeText, dataLines, growthText, lossText, restoreCommand, schemaLines, tableArg } from './drift-text.ts';
export { driftPair, driftSincePrevious, type DriftPair } from './pairs.ts';
