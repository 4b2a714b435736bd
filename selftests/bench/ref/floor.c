/*
 * Vendored copy of /work/shared/bench/floor.c (the project's shared
 * benchmark references, see /work/shared/bench/README.md), kept here so
 * that `make bench` runs on a clean clone. Unchanged below this comment;
 * refresh by copying the file again. scripts/bench.sh builds it with
 * `cc -O2` into build/bench/floor and runs `build/bench/floor seq`.
 */
/* Raw floors on this machine: AF_UNIX socketpair ping-pong round trip and
 * throughput between two processes, fork+exec and fork alone.
 * Build: cc -O2 -o floor floor.c   Run: ./floor [seq]   (seq: SOCK_SEQPACKET)
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/wait.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){
  int type = argc>1 && !strcmp(argv[1],"seq") ? SOCK_SEQPACKET : SOCK_STREAM;
  int sv[2]; socketpair(AF_UNIX,type,0,sv);
  int N=100000; char buf[64];
  pid_t p=fork();
  if(!p){close(sv[0]); for(int i=0;i<N;i++){ if(read(sv[1],buf,32)<=0)_exit(1); write(sv[1],buf,32);} _exit(0);}
  close(sv[1]);
  double t=now();
  for(int i=0;i<N;i++){write(sv[0],buf,32); read(sv[0],buf,32);}
  double dt=now()-t;
  printf("rtt_us %.2f\n", dt/N*1e6);
  waitpid(p,0,0);
  // throughput
  socketpair(AF_UNIX,type,0,sv);
  size_t chunk = type==SOCK_SEQPACKET? 65536: 1<<20; size_t total=(size_t)4<<30;
  char *b=malloc(1<<20); memset(b,1,1<<20);
  p=fork();
  if(!p){close(sv[0]); size_t got=0; while(got<total){ssize_t r=read(sv[1],b,1<<20); if(r<=0)break; got+=r;} _exit(0);}
  close(sv[1]);
  t=now(); size_t sent=0; while(sent<total){ssize_t w=write(sv[0],b,chunk); if(w<=0)break; sent+=w;} close(sv[0]); waitpid(p,0,0);
  printf("MBps %.0f\n", total/(now()-t)/1e6);
  // fork+exec+wait
  t=now(); for(int i=0;i<200;i++){p=fork(); if(!p){execl("/bin/true","true",NULL);_exit(1);} waitpid(p,0,0);} printf("forkexec_ms %.3f\n",(now()-t)/200*1e3);
  t=now(); for(int i=0;i<1000;i++){p=fork(); if(!p){_exit(0);} waitpid(p,0,0);} printf("fork_ms %.3f\n",(now()-t)/1000*1e3);
}
