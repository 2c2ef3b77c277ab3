// Prototype, not a kernel: how much a 3x3 pad-1 Conv gains when its padding taps are skipped
// (benchmarks/README.md "s34", docs/fp32-blocked-layout.md "s34"). Output pixels are grouped by
// their valid tap ranges (9 classes: interior, 4 edges, 4 corners); each class gets its own
// weights repacked with only its taps (mpq_sconv_cv_pack_weights_layout, rows) and its taps'
// offsets in the unpadded blocked image, and runs on the existing AVX-512 blocked tile
// (mpq_sconv_blocked_tile_avx512) in tiles of up to 6 of its pixels, written to a scratch and
// scattered to the blocked output. Against mpq_sconv2d_f32_blocked (every tap, one image, one
// thread), alternated, minimum over REPS; and whether the outputs have the same bits (they do
// on this random data; they would not where a partial sum is -0 at a padding tap or a weight
// is non-finite: the contract question the docs describe). AVX-512 hosts only.
//
//     source benchmarks/ckernels_lib.sh; lib Sources/CKernels /tmp/ck.a
//     clang -O2 -ISources/CKernels/include -ISources/CKernels benchmarks/fp32_skip_padding_prototype.c /tmp/ck.a \
//         -lpthread -lm -o /tmp/skip
//     /tmp/skip C HW M REPS        # e.g. 128 7 128 300 (resnet_digits' last stage)
#include "mpq_kernels.h"
#include "mpq_sgemm.h"
#include "sgemm_internal.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <immintrin.h>
#include <stddef.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static uint64_t st=88172645463325252ull;
static float rndf(void){st^=st<<13;st^=st>>7;st^=st<<17;return (float)((st>>40)&0xFFFF)/32768.0f-1.0f;}
static void*aalloc(size_t b){return aligned_alloc(64,(b+63)/64*64);}
typedef struct { int kh0,kh1,kw0,kw1,k; float *cw; int32_t *off; int32_t *kidx; int npx; int32_t *pix; int *opix; } cls;

// The indexed form: one copy of the weights (rows [k][64] of a block), the class's taps as a
// list of k; the same FMA chain per output as the tile over the repacked copy.
static inline __attribute__((always_inline, target("avx512f"))) void
indexed_tile(int kc, const int32_t *kidx, const float *w, const float *x, const int32_t *off, const int32_t *pix, float *y,
             const int NP) {
    __m512 acc[4][6];
    const float *px[6];
    for (int p = 0; p < NP; p++) px[p] = x + pix[p];
    _Pragma("unroll") for (int v = 0; v < 4; v++) _Pragma("unroll") for (int p = 0; p < NP; p++) acc[v][p] = _mm512_setzero_ps();
    for (int i = 0; i < kc; i++) {
        const int32_t k = kidx[i];
        const float *wk = w + (size_t)k * 64;
        __m512 wv[4];
        _Pragma("unroll") for (int v = 0; v < 4; v++) wv[v] = _mm512_load_ps(wk + 16 * v);
        const ptrdiff_t o = off[i];
        _Pragma("unroll") for (int p = 0; p < NP; p++) {
            const __m512 xb = _mm512_set1_ps(px[p][o]);
            _Pragma("unroll") for (int v = 0; v < 4; v++) acc[v][p] = _mm512_fmadd_ps(wv[v], xb, acc[v][p]);
        }
    }
    _Pragma("unroll") for (int v = 0; v < 4; v++) _Pragma("unroll") for (int p = 0; p < NP; p++) _mm512_storeu_ps(y + (v * 6 + p) * 16, acc[v][p]);
}
#define IT(NP) static __attribute__((target("avx512f"))) void it_##NP(int kc, const int32_t *kidx, const float *w, const float *x, \
    const int32_t *off, const int32_t *pix, float *y) { indexed_tile(kc, kidx, w, x, off, pix, y, NP); }
IT(1) IT(2) IT(3) IT(4) IT(5) IT(6)
typedef void (*it_fn)(int, const int32_t *, const float *, const float *, const int32_t *, const int32_t *, float *);
static const it_fn its[6] = {it_1, it_2, it_3, it_4, it_5, it_6};
int main(int argc,char**argv){
  if(argc<5){fprintf(stderr,"usage: %s C HW M REPS\n",argv[0]);return 2;}
  if(!mpq_kernel_path_available(MPQ_PATH_VNNI)){fprintf(stderr,"needs AVX-512 (the VNNI path)\n");return 2;}
  int C=atoi(argv[1]),H=atoi(argv[2]),M=atoi(argv[3]),reps=atoi(argv[4]); int W=H;
  mpq_conv2d_shape s={C,H,W,3,3,1,1,1,1,1,1,1,1,1};
  const int K=C*9, OH=H, OW=W; const size_t plane16=(size_t)OH*OW*16;
  float*x=aalloc((size_t)C*H*W*4),*w=malloc((size_t)M*K*4),*xb=aalloc(mpq_blocked_image_floats(C,H,W)*4);
  float*y0=aalloc(mpq_blocked_image_floats(M,OH,OW)*4),*y1=aalloc(mpq_blocked_image_floats(M,OH,OW)*4);
  for(size_t i=0;i<(size_t)C*H*W;i++)x[i]=rndf(); for(size_t i=0;i<(size_t)M*K;i++)w[i]=rndf()*0.05f;
  void*pw=aalloc(mpq_sconv_pack_weights_size(M,K,1)),*cw=aalloc(mpq_sconv_cv_weights_size(M,K,1));
  mpq_sconv_pack_weights(w,M,K,1,pw); mpq_sconv_cv_pack_weights_layout(pw,MPQ_SCONV_CV_ROWS,cw);
  mpq_reorder_to_blocked_f32(MPQ_PATH_VNNI,x,1,C,H,W,xb);
  cls cl[9]; int nc=0;
  for(int a=0;a<3;a++)for(int b=0;b<3;b++){ // a: top/mid/bottom, b: left/mid/right
    cls*c=&cl[nc++]; c->kh0=a==0?1:0; c->kh1=a==2?2:3; c->kw0=b==0?1:0; c->kw1=b==2?2:3;
    c->k=C*(c->kh1-c->kh0)*(c->kw1-c->kw0);
    float*wc=malloc((size_t)M*c->k*4); c->off=malloc(c->k*4); c->kidx=malloc(c->k*4); int k=0;
    for(int ch=0;ch<C;ch++)for(int kh=c->kh0;kh<c->kh1;kh++)for(int kw=c->kw0;kw<c->kw1;kw++,k++){
      for(int m=0;m<M;m++) wc[(size_t)m*c->k+k]=w[(size_t)m*K+ch*9+kh*3+kw];
      c->off[k]=(int32_t)((((ch/16)*H+kh)*W+kw)*16+ch%16); c->kidx[k]=ch*9+kh*3+kw;}
    void*p=aalloc(mpq_sconv_pack_weights_size(M,c->k,1)); c->cw=aalloc(mpq_sconv_cv_weights_size(M,c->k,1));
    mpq_sconv_pack_weights(wc,M,c->k,1,p); mpq_sconv_cv_pack_weights_layout(p,MPQ_SCONV_CV_ROWS,c->cw); free(p); free(wc);
    c->pix=malloc(OH*OW*4); c->opix=malloc(OH*OW*sizeof(int)); c->npx=0;
    for(int oh=0;oh<OH;oh++)for(int ow=0;ow<OW;ow++){
      int ca=oh==0?0:oh==OH-1?2:1, cb=ow==0?0:ow==OW-1?2:1; if(ca!=a||cb!=b)continue;
      c->pix[c->npx]=(int32_t)(((oh-1)*W+(ow-1))*16); c->opix[c->npx++]=oh*OW+ow;}
  }
  float*y2=aalloc(mpq_blocked_image_floats(M,OH,OW)*4);
  double tb=1e9,tp=1e9,ti=1e9; float tmp[4][6][16];
  const float*wfull=(const float*)((const char*)cw+64);
  for(int r=0;r<reps;r++){
    double t0=now(); mpq_sconv2d_f32_blocked(MPQ_PATH_VNNI,xb,1,&s,cw,NULL,MPQ_ACT_NONE,0,0,NULL,y0,1); double t1=now();
    for(int ci=0;ci<nc;ci++){cls*c=&cl[ci]; const float*wd=(const float*)((const char*)c->cw+64);
      for(int blk=0;blk*64<M;blk++){int rows=M-blk*64<64?M-blk*64:64, nv=(rows+15)/16; const float*wb=wd+(size_t)blk*c->k*64;
        for(int p0=0;p0<c->npx;p0+=6){int np=c->npx-p0<6?c->npx-p0:6;
          mpq_sconv_blocked_tile_avx512(c->k,wb,nv,xb,c->off,c->pix+p0,np,&tmp[0][0][0],96,rows,NULL);
          for(int v=0;v<nv;v++)for(int p=0;p<np;p++)memcpy(y1+(size_t)(blk*4+v)*plane16+(size_t)c->opix[p0+p]*16,tmp[v][p],64);}}}
    double t2=now();
    // Weight blocks outermost: each block (64 output channels, all taps) serves every class
    // while it is in cache.
    if(M%64==0) for(int blk=0;blk*64<M;blk++){const float*wb=wfull+(size_t)blk*K*64;
      for(int ci=0;ci<nc;ci++){cls*c=&cl[ci];
        for(int p0=0;p0<c->npx;p0+=6){int np=c->npx-p0<6?c->npx-p0:6;
          its[np-1](c->k,c->kidx,wb,xb,c->off,c->pix+p0,&tmp[0][0][0]);
          for(int v=0;v<4;v++)for(int p=0;p<np;p++)memcpy(y2+(size_t)(blk*4+v)*plane16+(size_t)c->opix[p0+p]*16,tmp[v][p],64);}}}
    double t3=now(); if(t1-t0<tb)tb=t1-t0; if(t2-t1<tp)tp=t2-t1; if(t3-t2<ti)ti=t3-t2;}
  size_t n=mpq_blocked_image_floats(M,OH,OW);
  printf("%d->%d 3x3 %dx%d: blocked %.1f us; taps skipped, weights per class %.1f us (%.3fx), same bits %s; one weight copy, tap lists %.1f us (%.3fx), same bits %s\n",
         C,M,H,W,tb*1e6,tp*1e6,tp/tb,memcmp(y0,y1,n*4)?"NO":"yes",ti*1e6,ti/tb,M%64?"-":memcmp(y0,y2,n*4)?"NO":"yes");
}
