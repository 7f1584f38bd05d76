/*
 * The local APIC, in xAPIC (MMIO) or x2APIC (MSR) mode behind one API.
 * Register names are the xAPIC MMIO offsets; in x2APIC mode the same
 * offset selects MSR 0x800 + offset / 16.
 */
#ifndef LOCKLAB_APIC_H
#define LOCKLAB_APIC_H

#include "types.h"

enum apic_mode { APIC_MODE_NONE, APIC_MODE_XAPIC, APIC_MODE_X2APIC };
extern enum apic_mode apic_mode;

#define APIC_ID 0x020
#define APIC_VERSION 0x030
#define APIC_TPR 0x080
#define APIC_EOI 0x0b0
#define APIC_SVR 0x0f0
#define APIC_ISR0 0x100 /* eight registers, 0x10 apart */
#define APIC_ESR 0x280
#define APIC_ICR_LO 0x300
#define APIC_ICR_HI 0x310 /* xAPIC only */
#define APIC_LVT_TIMER 0x320
#define APIC_LVT_THERMAL 0x330
#define APIC_LVT_PERF 0x340
#define APIC_LVT_LINT0 0x350
#define APIC_LVT_LINT1 0x360
#define APIC_LVT_ERROR 0x370
#define APIC_TIMER_INIT 0x380
#define APIC_TIMER_CUR 0x390
#define APIC_TIMER_DIV 0x3e0

#define APIC_SVR_ENABLE 0x100
#define APIC_LVT_MASKED 0x10000
#define APIC_LVT_DM_NMI 0x400
#define APIC_LVT_TIMER_PERIODIC 0x20000
#define APIC_LVT_TIMER_DEADLINE 0x40000
#define APIC_TIMER_DIV_1 0xb

/* Interrupt command register, low word. */
#define ICR_FIXED 0x000
#define ICR_NMI 0x400
#define ICR_INIT 0x500
#define ICR_STARTUP 0x600
#define ICR_PENDING 0x1000 /* xAPIC delivery status */
#define ICR_LEVEL_ASSERT 0x4000
#define ICR_TRIGGER_LEVEL 0x8000
#define ICR_ALL_BUT_SELF 0xc0000

/* Set up the boot CPU's APIC in the mode `apic=` asks for (or the best there is). */
void lapic_init(void);
/* The same mode and local set-up on an AP (called from ap_main). */
void lapic_ap_init(void);

uint32_t apic_read(uint32_t reg);
void apic_write(uint32_t reg, uint32_t v);
void lapic_eoi(void);
/* This CPU's APIC ID (32 bits in x2APIC mode). */
uint32_t lapic_id(void);
/* Whether the current mode can address this APIC ID as a destination. */
bool lapic_can_address(uint32_t apic_id);
/*
 * Send an IPI: `low` is the ICR low word (vector | delivery mode | ...).
 * In xAPIC mode it waits (bounded) for the delivery status to clear and
 * returns false if it never did.
 */
bool lapic_send_icr(uint32_t dest_apic_id, uint32_t low);

const char *apic_mode_name(enum apic_mode m);
bool x2apic_supported(void);

extern volatile uint64_t apic_spurious_count, apic_error_count;

/* KVM's paravirtual interfaces, the PV kick among them (kernel/apic/kvm.c). */
#include "kvm.h"

#endif
