// Types the dashboard checks (typecheck.mjs) assign the dashboards' JSON to.
//
// @grafana/schema describes a dashboard with TypeScript enums (FieldColorModeId,
// ThresholdsMode, MappingType, ...). A string enum accepts only its members, never
// the plain string a JSON file holds, so Json<T> turns every string enum into the
// union of its values ("palette-classic" | "thresholds" | ...) and leaves the rest
// of T as it is: required fields stay required, unknown fields in an object
// literal stay errors (excess property checks), wrong enum strings stay errors.
import type { DataQuery } from '@grafana/schema';

export type Json<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer U>
      ? Array<Json<U>>
      : T extends object
        ? { [K in keyof T]: Json<T[K]> }
        : T;

// The Prometheus data source's query (Grafana's PromQuery, @grafana/prometheus),
// which @grafana/schema leaves open as Record<string, unknown> in Panel.targets.
export interface PrometheusQuery extends DataQuery {
  expr: string;
  legendFormat?: string;
  range?: boolean;
  instant?: boolean;
  exemplar?: boolean;
  format?: 'time_series' | 'table' | 'heatmap';
  interval?: string;
  intervalFactor?: number;
  editorMode?: 'code' | 'builder';
  datasource?: { type?: 'prometheus'; uid?: string };
}

// A Prometheus query variable's query object (PromVariableQuery).
export interface PrometheusVariableQuery {
  qryType?: number;
  query: string;
  refId: string;
}
