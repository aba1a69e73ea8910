// followup (承办、督办、反馈): everything the console asks of it, under /api/followup.
import { get, post, request } from './http'

const base = '/api/followup'
export const inbox = (query) => get(`${base}/inbox`, query)
export const caseOf = (id) => get(`${base}/cases/${id}`)
export const sign = (id) => post(`${base}/cases/${id}/sign`)
export const reply = (id, body) => post(`${base}/cases/${id}/reply`, body)
export const requestExtension = (id, body) => post(`${base}/cases/${id}/extension`, body)
// 申请退单: { reason_code, responsible_unit, evidence, attachments }; codes from returnCodes().
export const returnCase = (id, body) => post(`${base}/cases/${id}/return`, body)
export const returnCodes = () => get(`${base}/returns/codes`)
export const disputeReturn = (id, text) => post(`${base}/cases/${id}/return-dispute`, { text })
export const decideReturn = (id, body) => post(`${base}/cases/${id}/return-review`, body)
export const respond = (id, how) => post(`${base}/cases/${id}/respond`, { how })
export const callBack = (id, body) => post(`${base}/cases/${id}/callback`, body)
export const reviewFeedback = (id, body) => post(`${base}/cases/${id}/feedback-review`, body)
export const closeSupervision = (id, result) =>
  post(`${base}/cases/${id}/supervision-order/close`, { result })
export const auditCall = (id, body) => post(`${base}/cases/${id}/audit-callback`, body)
// What waits for supervisors: 'returns' | 'reviews' | 'orders' | 'audits'.
export const waiting = (what, query) => get(`${base}/supervision/waiting/${what}`, query)
// 答复附件: the body is the file itself, its name in the query; downloaded by link.
export const uploadFile = (id, file) =>
  request('POST', `${base}/files/${id}`, { form: file, query: { filename: file.name } })
export const fileUrl = (id, fileId) => `${base}/files/${id}/${fileId}`
export const extensionsWaiting = (query) => get(`${base}/supervision/extensions`, query)
export const giveInput = (id, text) => post(`${base}/cases/${id}/input`, { text })
export const decideExtension = (id, body) => post(`${base}/cases/${id}/extension/decision`, body)
export const overdue = (query) => get(`${base}/supervision/overdue`, query)
export const escalated = (query) => get(`${base}/supervision/escalated`, query)
export const kpis = (dimension, month) => get(`${base}/kpis`, { dimension, month })
export const feedbackOf = (token) => get(`${base}/feedback/${token}`)
export const rate = (token, body) => post(`${base}/feedback/${token}`, body)
export const instruct = (id, body) => post(`${base}/cases/${id}/instructions`, body)
export const adopt = (id, body) => post(`${base}/cases/${id}/adoptions`, body)
// XLSX of a KPI table: a link the browser downloads (the session cookie goes with it).
export const kpiExportUrl = (dimension, month) =>
  `${base}/kpis/export?${new URLSearchParams({ dimension, month, format: 'xlsx' })}`
export const calendarStatus = () => get(`${base}/calendar/status`)
export const loadCalendar = (year) => request('PUT', `${base}/calendar/${year.year}`, { body: year })
// 审核: replies waiting for review, the decision, and which replies are reviewed.
export const reviewQueue = () => get(`${base}/reviews`)
export const reviewReply = (id, body) => post(`${base}/cases/${id}/review`, body)
export const reviewRules = () => get(`${base}/review/rules`)
export const putReviewRules = (rules) => request('PUT', `${base}/review/rules`, { body: rules })
// 信息专报: compile, revise, sign off, submit, record the outcome, export as DOCX.
export const reports = () => get(`${base}/reports`)
export const compileReport = (body) => post(`${base}/reports`, body)
export const reviseReport = (id, body) => request('PUT', `${base}/reports/${id}/draft`, { body })
export const signOffReport = (id, version) => post(`${base}/reports/${id}/sign-off`, { version })
export const submitReport = (id, level) => post(`${base}/reports/${id}/submission`, { level })
export const adoptReport = (id, body) => post(`${base}/reports/${id}/adoptions`, body)
export const instructReport = (id, body) => post(`${base}/reports/${id}/instructions`, body)
export const reportExportUrl = (id, version) =>
  `${base}/reports/${id}/export${version ? `?version=${version}` : ''}`
// 每月一题: themes of a month with their progress, tasks done, opinions linked.
export const themes = (month) => get(`${base}/themes`, { month })
export const openTheme = (body) => post(`${base}/themes`, body)
export const completeTask = (id, task, note) => post(`${base}/themes/${id}/tasks/${task}/done`, { note })
export const linkOpinion = (id, opinionId) => post(`${base}/themes/${id}/opinions`, { opinion_id: opinionId })
// 更正诉求类型 (分类 staff): the 办结 deadline is counted again from 交办.
export const correctKind = (id, kind) => post(`${base}/cases/${id}/kind`, { kind })
