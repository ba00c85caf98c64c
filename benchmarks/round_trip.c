// The round trip of a cache line between two threads pinned one to cpu0, one to cpu1:
// the median of each 100 ms window, for SECONDS (default 20). What two_cores.RoundTrip
// measures from Python, without the interpreter's own cost; its threshold (APART_ABOVE)
// was read beside this program's output (docs/performance.md, the twenty-third session).
// Not part of densa or of its build: compile and run it by hand,
//     cc -O2 -pthread benchmarks/round_trip.c -o /tmp/round_trip && /tmp/round_trip 30
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MAX_SAMPLES 200000
#define TRIPS_PER_SAMPLE 100

static _Alignas(64) atomic_long ping;  // each on its own cache line
static _Alignas(64) atomic_long pong;
static atomic_int stop;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

// On cpu1: answer each new count on `ping` with the same count on `pong`.
static void* echo(void* unused) {
  (void)unused;
  pin(1);
  long last = 0;
  while (!atomic_load(&stop)) {
    long v = atomic_load_explicit(&ping, memory_order_acquire);
    if (v != last) {
      last = v;
      atomic_store_explicit(&pong, v, memory_order_release);
    }
  }
  return NULL;
}

static int by_value(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 20;
  int windows = (int)(seconds * 10);
  if (windows < 1) {
    fprintf(stderr, "usage: %s [seconds >= 0.1]\n", argv[0]);
    return 2;
  }
  pin(0);
  pthread_t partner;
  pthread_create(&partner, NULL, echo, NULL);
  double* window = malloc(sizeof(double) * windows);
  static double sample[MAX_SAMPLES];
  long k = 0;
  double t0 = now();
  for (int w = 0; w < windows; w++) {
    int n = 0;
    double end = t0 + (w + 1) * 0.1;
    while (now() < end && n < MAX_SAMPLES) {
      double a = now();
      for (int r = 0; r < TRIPS_PER_SAMPLE; r++) {
        k++;
        atomic_store_explicit(&ping, k, memory_order_release);
        while (atomic_load_explicit(&pong, memory_order_acquire) != k) {
        }
      }
      sample[n++] = (now() - a) / TRIPS_PER_SAMPLE;
    }
    qsort(sample, n, sizeof(double), by_value);
    window[w] = sample[n / 2];
  }
  atomic_store(&stop, 1);
  pthread_join(partner, NULL);

  printf("per 1 s, the median of its windows' round trips, ns:");
  for (int i = 0; i + 10 <= windows; i += 10) {
    double m[10];
    for (int j = 0; j < 10; j++) m[j] = window[i + j];
    qsort(m, 10, sizeof(double), by_value);
    printf(" %.0f", m[5] * 1e9);
  }
  qsort(window, windows, sizeof(double), by_value);
  printf("\nround trip per 100 ms window, ns: p10 %.0f p50 %.0f p90 %.0f max %.0f\n",
         window[windows / 10] * 1e9, window[windows / 2] * 1e9,
         window[windows * 9 / 10] * 1e9, window[windows - 1] * 1e9);
  free(window);
  return 0;
}
