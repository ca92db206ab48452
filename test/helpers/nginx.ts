/** The nginx helper lives with the benchmarks (shipped code must not import test/); tests use it from here. */
export * from '../../benchmarks/nginx.js';
