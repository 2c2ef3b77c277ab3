// A batch of images through one FP32 Conv on the channel-vector driver (mpq_sconv2d_f32_cv), bias +
// Relu, random data: minimum wall time of R calls and an FNV hash of the output bytes, so runs with
// MPQ_FP32_CONV_CV_BATCH=0 and =1 (blocks over images, docs/fp32-gemm.md) can be compared for time
// and bits. Build against Sources/CKernels (benchmarks/ckernels_lib.sh):
//   source benchmarks/ckernels_lib.sh; lib Sources/CKernels /tmp/k.a
//   clang -O2 -ISources/CKernels/include benchmarks/fp32_conv_batch.c /tmp/k.a -lpthread -lm -o /tmp/fp32_conv_batch
//   MPQ_FP32_CONV_CV_BATCH=0 /tmp/fp32_conv_batch C H M K STRIDE PAD IMAGES THREADS REPS
//   (ResNet-18's 7x7 layer at batch 16 on one thread: 512 7 512 3 1 1 16 1 6)
#include "mpq_kernels.h"
#include "mpq_sgemm.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdint.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static uint64_t st=88172645463325252ull;
static float rndf(void){st^=st<<13;st^=st>>7;st^=st<<17;return (float)((st>>40)&0xFFFF)/32768.0f-1.0f;}
int main(int argc,char**argv){
  int c=atoi(argv[1]),h=atoi(argv[2]),m=atoi(argv[3]),k=atoi(argv[4]),st_=atoi(argv[5]),pad=atoi(argv[6]),n=atoi(argv[7]),threads=atoi(argv[8]),R=atoi(argv[9]);
  mpq_conv2d_shape s={c,h,h,k,k,pad,pad,pad,pad,st_,st_,1,1,1};
  int K=c*k*k; size_t nx=(size_t)n*c*h*h, ny=(size_t)n*m*mpq_conv2d_out_h(&s)*mpq_conv2d_out_w(&s);
  float*x=malloc(nx*4),*y=malloc(ny*4),*b=malloc(m*4),*w=malloc((size_t)m*K*4);
  for(size_t i=0;i<nx;i++)x[i]=rndf(); for(size_t i=0;i<(size_t)m*K;i++)w[i]=rndf()*0.05f; for(int i=0;i<m;i++)b[i]=rndf()*0.1f;
  void*pw=aligned_alloc(64,(mpq_sconv_pack_weights_size(m,K,1)+63)/64*64),*cw=aligned_alloc(64,(mpq_sconv_cv_weights_size(m,K,1)+63)/64*64);
  mpq_sconv_pack_weights(w,m,K,1,pw); mpq_sconv_cv_pack_weights_layout(pw, mpq_sconv_cv_host_layout(), cw);
  double best=1e9;
  for(int r=0;r<R;r++){double t=now(); if(mpq_sconv2d_f32_cv(MPQ_PATH_VNNI,x,n,&s,cw,b,MPQ_ACT_CLAMP,0,1e30f,NULL,y,threads))return 1; t=now()-t; if(t<best)best=t;}
  uint64_t hsh=1469598103934665603ull; const unsigned char*p=(const unsigned char*)y; for(size_t i=0;i<ny*4;i++){hsh^=p[i];hsh*=1099511628211ull;}
  printf("%dx%d %d->%d k%d s%d n%d t%d: %.3f ms %.1f GF/s hash %016llx\n",h,h,c,m,k,st_,n,threads,best*1e3,2.0*m*K*(ny/m)/best/1e9,(unsigned long long)hsh);
}
